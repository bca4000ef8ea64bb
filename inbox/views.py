"""The operator inbox's pages and fragments (`/t/<slug>/inbox/`).

Server-rendered: the page works as plain links and forms; inbox.js swaps in fragments from the
views below and drives the live socket (inbox/consumers.py). Both paths call the same services.
Operators sign in through the tenant admin's login (session auth, CSRF on every POST).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.template.response import SimpleTemplateResponse
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from conversations.models import Conversation, Operator
from conversations.selectors import participant_find
from hub.exceptions import ApplicationError, error_body
from inbox import selectors, services
from inbox.presence import operator_presence_get, visitor_online
from tenants.connection import tenant_connection

VIEW_TITLES = {"mine": "Mine", "unassigned": "Unassigned", "all": "All conversations"}
STATUS_TITLES = {
    "open": "Open",
    "waiting": "Needs a human",
    "snoozed": "Snoozed",
    "resolved": "Resolved",
    "all": "Every status",
}

SNOOZE_CHOICES = [("1h", "1 hour"), ("4h", "4 hours"), ("24h", "1 day"), ("7d", "1 week")]

View = Callable[..., HttpResponse]


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def operator_required(view: View) -> View:
    """Signed in to this tenant (its sessions live in its schema, so another tenant's session
    is simply anonymous here) and an operator; `request.operator` is set for the view."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            if _wants_json(request):
                body = error_body("not_authenticated", "Sign in to the inbox.")
                return JsonResponse(body, status=401)
            return redirect_to_login(request.get_full_path(), reverse("tenant_admin:login"))
        operator = services.operator_ensure(user=request.user)
        if operator is None:
            if _wants_json(request):
                body = error_body("not_an_operator", "This account is not an operator.")
                return JsonResponse(body, status=403)
            return SimpleTemplateResponse(
                "hub/refusal.html",
                {
                    "title": "Not an operator",
                    "message": "This account cannot answer conversations here. Ask an admin "
                    "of this workspace to give it staff access (or an operator profile).",
                },
                status=403,
            ).render()
        request.operator = operator  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return wrapper


def _operator(request: HttpRequest) -> Operator:
    return request.operator  # type: ignore[attr-defined]


def _list_params(request: HttpRequest) -> tuple[str, str]:
    view = request.GET.get("view", "all")
    status = request.GET.get("status", "open")
    return (
        view if view in selectors.VIEWS else "all",
        status if status in selectors.STATUS_FILTERS else "open",
    )


def _socket_path() -> str:
    # `/t/<slug>/inbox/` → `/t/<slug>/ws/inbox/`; `/inbox/` on a tenant domain → `/ws/inbox/`.
    return reverse("inbox:home").removesuffix("inbox/") + "ws/inbox/"


def _rows(
    request: HttpRequest, *, view: str, status: str, before: datetime | None = None
) -> tuple[list[Conversation], datetime | None]:
    page = list(
        selectors.inbox_conversation_list(
            operator=_operator(request), view=view, status=status, before=before
        )[: selectors.LIST_PAGE + 1]
    )
    more = len(page) > selectors.LIST_PAGE
    page = page[: selectors.LIST_PAGE]
    return page, (page[-1].activity_at if more else None)  # type: ignore[attr-defined]


def _pane_context(conversation: Conversation) -> dict[str, Any]:
    schema = tenant_connection().schema_name
    thread = selectors.inbox_thread(conversation=conversation)
    operators = list(selectors.operator_list())
    presence = operator_presence_get(
        schema=schema, operator_ids=[str(operator.pk) for operator in operators]
    )
    for operator in operators:
        operator.presence = presence.get(str(operator.pk), "offline")  # type: ignore[attr-defined]
    customer = participant_find(conversation=conversation, contact=conversation.contact)
    return {
        "conversation": conversation,
        "thread": thread,
        "has_older": bool(thread) and thread[0].seq > 1,
        "last_seq": thread[-1].seq if thread else 0,
        "operators": operators,
        "visitor_online": visitor_online(schema=schema, conversation_id=str(conversation.pk)),
        "visitor_read_seq": customer.last_read_seq if customer else 0,
        "identities": list(conversation.contact.identities.all()),
        "snooze_presets": SNOOZE_CHOICES,
    }


@require_GET
@operator_required
def inbox_page(request: HttpRequest, conversation_id: str | None = None) -> HttpResponse:
    operator = _operator(request)
    view, status = _list_params(request)
    conversation = None
    if conversation_id is not None:
        try:
            conversation = selectors.inbox_conversation_get(
                conversation_id=conversation_id, operator=operator
            )
        except ApplicationError:
            return SimpleTemplateResponse(
                "hub/refusal.html",
                {"title": "Not found", "message": "There is no such conversation here."},
                status=404,
            ).render()
    rows, next_before = _rows(request, view=view, status=status)
    context: dict[str, Any] = {
        "operator": operator,
        "tenant": request.tenant,  # type: ignore[attr-defined]
        "view": view,
        "status": status,
        "view_title": VIEW_TITLES[view],
        "status_title": STATUS_TITLES[status],
        "status_titles": STATUS_TITLES,
        "query": urlencode({"view": view, "status": status}),
        "conversations": rows,
        "next_before": next_before,
        "counts": selectors.inbox_counts(operator=operator),
        "notifications": selectors.notification_list(operator=operator),
        "notifications_unread": selectors.notification_unread_count(operator=operator),
        "canned_responses": [
            {"shortcut": canned.shortcut, "text": canned.text}
            for canned in selectors.canned_response_list()
        ],
        "socket_path": _socket_path(),
        "selected_id": conversation.pk if conversation else None,
    }
    if conversation is not None:
        context.update(_pane_context(conversation))
    return render(request, "inbox/inbox.html", context)


@require_GET
@operator_required
def inbox_list(request: HttpRequest) -> HttpResponse:
    """More rows of a view (`before` = the last row's activity time), as HTML in JSON."""
    view, status = _list_params(request)
    before = parse_datetime(request.GET.get("before", ""))
    rows, next_before = _rows(request, view=view, status=status, before=before)
    html = render_to_string(
        "inbox/_rows.html",
        {
            "conversations": rows,
            "operator": _operator(request),
            "query": urlencode({"view": view, "status": status}),
        },
        request=request,
    )
    return JsonResponse(
        {"html": html, "next_before": next_before.isoformat() if next_before else None}
    )


def _conversation(request: HttpRequest, conversation_id: str) -> Conversation:
    return selectors.inbox_conversation_get(
        conversation_id=conversation_id, operator=_operator(request)
    )


def _json_error(error: ApplicationError) -> JsonResponse:
    return JsonResponse(
        error_body(error.error_code, str(error.detail), error.details), status=error.status_code
    )


def _fragment(view: View) -> View:
    """Fragments and actions answer JSON errors in the API's shape."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ApplicationError as error:
            if _wants_json(request) or request.method == "GET":
                return _json_error(error)
            messages.error(request, str(error.detail))
            return _back(request)

    return wrapper


@require_GET
@operator_required
@_fragment
def conversation_pane(request: HttpRequest, conversation_id: str) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    context = {"operator": _operator(request), **_pane_context(conversation)}
    return render(request, "inbox/_pane.html", context)


@require_GET
@operator_required
@_fragment
def conversation_row(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """The conversation's row in the given list (null when it no longer belongs there) and the
    navigation's counts: what a live update needs."""
    operator = _operator(request)
    view, status = _list_params(request)
    conversation = _conversation(request, conversation_id)
    row = None
    if selectors.inbox_conversation_matches(
        conversation=conversation, operator=operator, view=view, status=status
    ):
        row = render_to_string(
            "inbox/_row.html",
            {
                "c": conversation,
                "operator": operator,
                "query": urlencode({"view": view, "status": status}),
                "selected_id": request.GET.get("selected"),
            },
            request=request,
        )
    counts = selectors.inbox_counts(operator=operator)
    return JsonResponse(
        {
            "row": row,
            "activity_at": conversation.activity_at.isoformat(),  # type: ignore[attr-defined]
            "counts": counts.__dict__,
        }
    )


def _int_param(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ApplicationError(
            f"{name} must be an integer.", code="validation_error", details={name: ["Integer."]}
        ) from None


@require_GET
@operator_required
@_fragment
def conversation_messages(request: HttpRequest, conversation_id: str) -> HttpResponse:
    """Older messages (`before_seq`) or newer ones (`after_seq`), as HTML in JSON."""
    conversation = _conversation(request, conversation_id)
    before_seq, after_seq = _int_param(request, "before_seq"), _int_param(request, "after_seq")
    thread = selectors.inbox_thread(
        conversation=conversation, before_seq=before_seq, after_seq=after_seq
    )
    customer = participant_find(conversation=conversation, contact=conversation.contact)
    html = render_to_string(
        "inbox/_messages.html",
        {"thread": thread, "visitor_read_seq": customer.last_read_seq if customer else 0},
        request=request,
    )
    return JsonResponse(
        {
            "html": html,
            "first_seq": thread[0].seq if thread else None,
            "last_seq": thread[-1].seq if thread else None,
            "has_older": bool(thread) and thread[0].seq > 1 and after_seq is None,
        }
    )


def _back(request: HttpRequest) -> HttpResponseRedirect:
    """Back to the page the form was on, if it is one of ours."""
    referer = request.headers.get("Referer", "")
    allowed = {request.get_host()}
    if url_has_allowed_host_and_scheme(referer, allowed, require_https=request.is_secure()):
        return HttpResponseRedirect(referer)
    return HttpResponseRedirect(reverse("inbox:home"))


def _done(request: HttpRequest, conversation_id: str, body: dict[str, Any]) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(body)
    target = reverse("inbox:conversation", args=[conversation_id])
    query = request.POST.get("query", "")
    return HttpResponseRedirect(f"{target}?{query}" if query else target)


@require_POST
@operator_required
@_fragment
def conversation_reply(request: HttpRequest, conversation_id: str) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    message, created = services.inbox_reply(
        conversation=conversation,
        operator=_operator(request),
        text=request.POST.get("text", ""),
        client_id=request.POST.get("client_id", "")[:100],
        is_private=request.POST.get("private") in ("1", "true", "on"),
    )
    body = {"message_id": str(message.pk), "seq": message.seq, "created": created}
    return _done(request, conversation_id, body)


@require_POST
@operator_required
@_fragment
def conversation_action(request: HttpRequest, conversation_id: str) -> HttpResponse:
    conversation = services.inbox_apply_action(
        conversation=_conversation(request, conversation_id),
        operator=_operator(request),
        action=request.POST.get("action", ""),
        assignee_id=request.POST.get("operator") or None,
        until=request.POST.get("until", ""),
    )
    body = {"status": conversation.status, "ai_active": conversation.ai_active}
    return _done(request, conversation_id, body)


@require_POST
@operator_required
@_fragment
def availability_set(request: HttpRequest) -> HttpResponse:
    operator = services.operator_availability_set(
        operator=_operator(request), availability=request.POST.get("availability", "")
    )
    if _wants_json(request):
        return JsonResponse({"availability": operator.availability})
    return _back(request)


@require_POST
@operator_required
@_fragment
def notification_read(request: HttpRequest, notification_id: str) -> HttpResponse:
    notification = selectors.notification_get(
        notification_id=notification_id, operator=_operator(request)
    )
    services.notification_mark_read(notification=notification)
    if _wants_json(request):
        return JsonResponse({"id": str(notification.pk), "read": True})
    if notification.conversation_id:
        return HttpResponseRedirect(
            reverse("inbox:conversation", args=[notification.conversation_id])
        )
    return HttpResponseRedirect(reverse("inbox:home"))


@require_POST
@operator_required
@_fragment
def notifications_read_all(request: HttpRequest) -> HttpResponse:
    marked = services.notifications_mark_all_read(operator=_operator(request))
    if _wants_json(request):
        return JsonResponse({"marked": marked})
    return _back(request)
