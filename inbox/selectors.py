"""Reads for the operator inbox. Everything runs in the current tenant's schema, so another
tenant's ids are simply not found."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, F, Q, QuerySet

from conversations.models import Conversation, Message, Operator
from conversations.selectors import Reader, conversation_list_by_activity, message_list
from hub.exceptions import NotFoundError
from inbox.models import CannedResponse, Notification

Status = Conversation.Status

VIEWS = ("mine", "unassigned", "all")
# "open" is what needs attention: open, and pending (handed over, waiting for a person).
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "open": (Status.OPEN, Status.PENDING),
    "waiting": (Status.PENDING,),
    "snoozed": (Status.SNOOZED,),
    "resolved": (Status.RESOLVED,),
    "all": tuple(Status.values),
}
LIST_PAGE = 50
THREAD_PAGE = 50


@dataclass(frozen=True)
class InboxCounts:
    """Open conversations per view, for the navigation's badges."""

    mine: int
    unassigned: int
    all: int
    waiting: int


def operator_for_user(*, user: AbstractBaseUser | AnonymousUser) -> Operator | None:
    if not user.is_authenticated or not user.is_active:
        return None
    return Operator.objects.filter(user_id=user.pk).first()


def inbox_conversation_list(
    *,
    operator: Operator,
    view: str = "all",
    status: str = "open",
    before: datetime | None = None,
) -> QuerySet[Conversation]:
    """A view of the inbox (mine, unassigned, all) in one status filter, newest activity first,
    with the operator's `unread_count`. `before` pages on by activity."""
    conversations = conversation_list_by_activity(reader=Reader(operator_id=operator.pk)).filter(
        status__in=STATUS_FILTERS.get(status, STATUS_FILTERS["open"])
    )
    if view == "mine":
        conversations = conversations.filter(assignee=operator)
    elif view == "unassigned":
        conversations = conversations.filter(assignee__isnull=True)
    if before is not None:
        # `activity_at` is the selector's annotation (Q and F: the type checker sees only fields).
        conversations = conversations.filter(Q(activity_at__lt=before))
    return conversations.order_by(F("activity_at").desc(), "-id")


def inbox_conversation_matches(
    *, conversation: Conversation, operator: Operator, view: str, status: str
) -> bool:
    """Whether the conversation belongs in that list (a live update may move it out)."""
    if conversation.status not in STATUS_FILTERS.get(status, STATUS_FILTERS["open"]):
        return False
    if view == "mine":
        return conversation.assignee_id == operator.pk
    if view == "unassigned":
        return conversation.assignee_id is None
    return True


def inbox_counts(*, operator: Operator) -> InboxCounts:
    """One query for every badge."""
    totals = Conversation.objects.filter(status__in=STATUS_FILTERS["open"]).aggregate(
        all=Count("pk"),
        mine=Count("pk", filter=Q(assignee=operator)),
        unassigned=Count("pk", filter=Q(assignee__isnull=True)),
        waiting=Count("pk", filter=Q(status=Status.PENDING)),
    )
    return InboxCounts(**totals)


def inbox_conversation_get(*, conversation_id: uuid.UUID | str, operator: Operator) -> Conversation:
    """One conversation with the operator's `unread_count`, or 404."""
    try:
        uuid.UUID(str(conversation_id))
    except ValueError:
        raise NotFoundError("No such conversation.") from None
    conversation = (
        conversation_list_by_activity(reader=Reader(operator_id=operator.pk))
        .select_related("channel__agent")
        .filter(pk=conversation_id)
        .first()
    )
    if conversation is None:
        raise NotFoundError("No such conversation.")
    return conversation


def inbox_thread(
    *,
    conversation: Conversation,
    before_seq: int | None = None,
    after_seq: int | None = None,
    limit: int = THREAD_PAGE,
) -> list[Message]:
    """A page of the thread in seq order: the newest `limit` messages, those before
    `before_seq` (older ones, for scrolling up), or every one after `after_seq` (catching up)."""
    messages = message_list(conversation=conversation)
    if after_seq is not None:
        return list(messages.filter(seq__gt=after_seq).order_by("seq")[: limit * 4])
    if before_seq is not None:
        messages = messages.filter(seq__lt=before_seq)
    return list(reversed(messages.order_by("-seq")[:limit]))


def operator_list() -> QuerySet[Operator]:
    return Operator.objects.select_related("user").filter(user__is_active=True)


def notification_list(*, operator: Operator, limit: int = 30) -> list[Notification]:
    """The operator's own notifications and those for everyone, newest first."""
    return list(
        Notification.objects.filter(Q(operator__isnull=True) | Q(operator=operator))
        .select_related("conversation__contact")
        .order_by("-created_at")[:limit]
    )


def notification_unread_count(*, operator: Operator) -> int:
    return Notification.objects.filter(
        Q(operator__isnull=True) | Q(operator=operator), read_at__isnull=True
    ).count()


def notification_get(*, notification_id: uuid.UUID | str, operator: Operator) -> Notification:
    """A notification this operator may see (someone else's personal one is not found)."""
    try:
        uuid.UUID(str(notification_id))
    except ValueError:
        raise NotFoundError("No such notification.") from None
    notification = Notification.objects.filter(
        Q(operator__isnull=True) | Q(operator=operator), pk=notification_id
    ).first()
    if notification is None:
        raise NotFoundError("No such notification.")
    return notification


def canned_response_list() -> QuerySet[CannedResponse]:
    return CannedResponse.objects.all()


def canned_response_get(*, canned_response_id: uuid.UUID | str) -> CannedResponse:
    try:
        uuid.UUID(str(canned_response_id))
    except ValueError:
        raise NotFoundError("No such canned response.") from None
    found = CannedResponse.objects.filter(pk=canned_response_id).first()
    if found is None:
        raise NotFoundError("No such canned response.")
    return found
