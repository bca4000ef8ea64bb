"""The tenant's console for the conversation domain (`/t/<slug>/admin/`).

Everything is registered on `tenant_admin_site`, so it reads and writes the tenant's own schema.
Writes go through the services (they keep seqs, events and erasure rules in one place); the admin
only picks the rows and reports back.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.handlers.asgi import ASGIRequest
from django.db import models
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator
from django_tenants.utils import schema_context

from conversations.content import MEDIA_TYPES
from conversations.models import (
    Attachment,
    Contact,
    ContactIdentity,
    Conversation,
    Message,
    Operator,
    Participant,
)
from conversations.selectors import message_list
from conversations.services.contacts import (
    CONTACT_FIELDS,
    contact_create,
    contact_erase,
    contact_merge,
    contact_update,
)
from conversations.services.conversations import (
    conversation_assign,
    conversation_set_status,
    conversation_update,
)
from conversations.services.messages import message_soft_delete
from conversations.services.operators import operator_create, operator_set_availability
from hub.admin_sites import tenant_admin_site
from hub.exceptions import ApplicationError
from retention.services import LegalHold
from tenants.connection import tenant_connection

# The change page shows this many of the newest messages; longer threads link to the full list.
THREAD_LIMIT = 200
EXPORT_CHUNK = 500
EXPORT_HEADER = (
    "id",
    "contact",
    "channel",
    "status",
    "priority",
    "assignee",
    "labels",
    "created_at",
    "last_activity_at",
    "message_count",
)
# A spreadsheet runs a cell starting with one of these as a formula, and contact names come
# from customers: such cells are written with a leading quote (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _adopt(instance: models.Model, saved: models.Model) -> None:
    """The admin goes on with the form's instance (log entry, message, redirect), so it takes
    the values of the row a service created."""
    for field in instance._meta.concrete_fields:
        setattr(instance, field.attname, getattr(saved, field.attname))
    instance._state.adding = False
    instance._state.db = saved._state.db


def _change_url(site: admin.AdminSite, obj: models.Model) -> str:
    opts = obj._meta
    return reverse(f"{site.name}:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


# --- Content, as a person reads it ----------------------------------------------------------


def content_summary(content: Any) -> str:
    """One line for any canonical content type (CONTRACT §4), for lists and the thread."""
    if not isinstance(content, dict):
        return ""
    kind = content.get("type", "?")
    if kind == "text":
        return str(content.get("text", ""))
    if kind in MEDIA_TYPES:
        detail = content.get("caption") or content.get("filename") or ""
        return f"[{kind}] {detail}".rstrip()
    if kind == "location":
        place = ", ".join(filter(None, [content.get("name"), content.get("address")]))
        where = f"{content.get('latitude')}, {content.get('longitude')}"
        return f"[location] {place} ({where})" if place else f"[location] {where}"
    if kind in ("buttons", "list"):
        if kind == "buttons":
            choices = " / ".join(str(b.get("title", "")) for b in content.get("buttons") or [])
        else:
            choices = str(content.get("button", ""))
        return f"{content.get('text', '')} [{kind}: {choices}]"
    if kind == "reaction":
        return f"[reaction {content.get('emoji') or 'removed'}]"
    return f"[{kind}] {content.get('description', '')}".rstrip()


def message_sender(message: Message) -> str:
    if message.sender_type == Message.SenderType.CONTACT:
        return str(message.sender_contact) if message.sender_contact else "Contact"
    if message.sender_type == Message.SenderType.OPERATOR:
        return str(message.sender_operator) if message.sender_operator else "Operator"
    return "AI" if message.sender_type == Message.SenderType.AI else "System"


# --- Operators ------------------------------------------------------------------------------


@admin.register(Operator, site=tenant_admin_site)
class OperatorAdmin(admin.ModelAdmin):
    list_display = (
        "display_name",
        "user",
        "role",
        "availability",
        "capacity",
        "open_assigned",
    )
    list_filter = ("role", "availability")
    list_select_related = ("user",)
    search_fields = ("display_name", "user__username", "user__email")
    fields = ("user", "display_name", "role", "availability", "capacity", "created_at")
    readonly_fields = ("created_at",)
    autocomplete_fields = ("user",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Operator]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                open_assigned_count=Count(
                    "conversations", filter=Q(conversations__status=Conversation.Status.OPEN)
                )
            )
        )

    def get_readonly_fields(
        self, request: HttpRequest, obj: Operator | None = None
    ) -> tuple[str, ...]:
        # An operator is one user's seat in the inbox; another user gets their own operator.
        return (*self.readonly_fields, "user") if obj else tuple(self.readonly_fields)

    @admin.display(description="Open assigned", ordering="open_assigned_count")
    def open_assigned(self, obj: Operator) -> int:
        return getattr(obj, "open_assigned_count", 0)

    def save_model(self, request: HttpRequest, obj: Operator, form: Any, change: bool) -> None:
        if not change:
            created = operator_create(
                user=obj.user, display_name=obj.display_name, role=obj.role, capacity=obj.capacity
            )
            if obj.availability != created.availability:
                operator_set_availability(operator=created, availability=obj.availability)
            _adopt(obj, created)
            return
        changed = set(form.changed_data)
        if "availability" in changed:
            operator_set_availability(operator=obj, availability=obj.availability)
        rest = sorted(changed & {"display_name", "role", "capacity"})
        if rest:
            obj.save(update_fields=rest)


# --- Contacts -------------------------------------------------------------------------------


class ContactIdentityInline(admin.TabularInline):
    model = ContactIdentity
    extra = 0
    fields = ("channel_kind", "external_id", "created_at")
    readonly_fields = fields
    can_delete = False

    # Identities come from channels (and move on a merge); the admin shows them.
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ErasedFilter(admin.SimpleListFilter):
    title = "erased"
    parameter_name = "erased"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Erased"), ("no", "Not erased")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Contact]) -> QuerySet[Contact]:
        if self.value() == "yes":
            return queryset.filter(erased_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(erased_at__isnull=True)
        return queryset


@admin.register(Contact, site=tenant_admin_site)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("display_name", "email", "phone", "identity_total", "erased", "created_at")
    list_filter = (ErasedFilter, "created_at")
    search_fields = ("name", "email", "phone", "identities__external_id")
    fields = (*CONTACT_FIELDS, "erased_at", "created_at", "updated_at")
    readonly_fields = ("erased_at", "created_at", "updated_at")
    inlines = [ContactIdentityInline]
    actions = ["merge_contacts", "erase_contacts"]
    # Django 6's default for a scheme-less avatar URL, chosen now.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Contact]:
        return super().get_queryset(request).annotate(identity_count=Count("identities"))

    def get_readonly_fields(
        self, request: HttpRequest, obj: Contact | None = None
    ) -> tuple[str, ...]:
        # An erased contact stays erased: nothing personal may be written back by hand.
        if obj is not None and obj.erased_at is not None:
            return tuple(self.fields)
        return tuple(self.readonly_fields)

    @admin.display(description="Name", ordering="name")
    def display_name(self, obj: Contact) -> str:
        if obj.erased_at is not None:
            return "(erased contact)"
        return obj.name or "(no name)"

    @admin.display(description="Identities", ordering="identity_count")
    def identity_total(self, obj: Contact) -> int:
        return getattr(obj, "identity_count", 0)

    @admin.display(description="Erased", boolean=True, ordering="erased_at")
    def erased(self, obj: Contact) -> bool:
        return obj.erased_at is not None

    def save_model(self, request: HttpRequest, obj: Contact, form: Any, change: bool) -> None:
        values = {key: getattr(obj, key) for key in CONTACT_FIELDS}
        if change:
            changed = {key: values[key] for key in form.changed_data if key in values}
            if changed:
                contact_update(contact=obj, **changed)
            return
        # Through the service, so subscribers hear `contact.created` as from the API.
        _adopt(obj, contact_create(**values))

    @admin.action(
        description="Merge selected contacts (the newer into the older)", permissions=["change"]
    )
    def merge_contacts(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        contacts = list(queryset.order_by("created_at", "pk")[:3])
        if len(contacts) != 2:
            self.message_user(request, "Select exactly two contacts to merge.", messages.ERROR)
            return
        target, source = contacts
        if target.erased_at is not None or source.erased_at is not None:
            # A merge fills the target's blanks from the source: an erased contact would get
            # personal data back, or hand its erased history to someone else.
            self.message_user(request, "Erased contacts cannot be merged.", messages.ERROR)
            return
        source_label = str(source)
        try:
            merged = contact_merge(target=target, source=source)
        except ApplicationError as error:
            self.message_user(request, f"Not merged: {error.detail}", messages.ERROR)
            return
        self.message_user(
            request,
            format_html(
                'Merged "{}" into <a href="{}">{}</a>.',
                source_label,
                _change_url(self.admin_site, merged),
                merged,
            ),
            messages.SUCCESS,
        )

    # Erasing destroys data as deleting does, so it takes the same permission.
    @admin.action(
        description="Erase selected contacts (personal data and messages)", permissions=["delete"]
    )
    def erase_contacts(
        self, request: HttpRequest, queryset: QuerySet[Contact]
    ) -> TemplateResponse | None:
        # Erasure cannot be undone, so it asks first, as Django's "delete selected" does.
        if request.POST.get("post") == "yes":
            erased = held = 0
            for contact in queryset.filter(erased_at__isnull=True):
                try:
                    contact_erase(contact=contact)
                except LegalHold:
                    held += 1
                    continue
                erased += 1
            skipped = queryset.count() - erased - held
            note = f" ({skipped} already erased)" if skipped else ""
            if held:
                note += f"; {held} kept: a conversation of theirs is under legal hold"
            self.message_user(request, f"Erased {erased} contact(s){note}.", messages.SUCCESS)
            return None
        opts = self.model._meta
        contacts = queryset.annotate(conversation_count=Count("conversations", distinct=True))
        context = {
            **self.admin_site.each_context(request),
            "title": "Erase contacts: are you sure?",
            "opts": opts,
            "queryset": contacts,
            "message_count": Message.objects.filter(conversation__contact__in=queryset).count(),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/conversations/contact/erase_selected_confirmation.html", context
        )


@admin.register(ContactIdentity, site=tenant_admin_site)
class ContactIdentityAdmin(admin.ModelAdmin):
    """Answers "who is telegram:12345?"; identities are written by channels and merges."""

    list_display = ("channel_kind", "external_id", "contact", "created_at")
    list_filter = ("channel_kind",)
    list_select_related = ("contact",)
    search_fields = ("external_id", "contact__name", "contact__email", "contact__phone")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- Conversations --------------------------------------------------------------------------


class ConversationForm(forms.ModelForm):
    class Meta:
        model = Conversation
        fields = ("status", "snoozed_until", "priority", "assignee", "labels", "ai_active")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        # conversation_update's rule, checked here so the page shows a field error, not a 500.
        until = data.get("snoozed_until")
        if data.get("status") == Conversation.Status.SNOOZED and (
            until is None or until <= timezone.now()
        ):
            self.add_error("snoozed_until", "Required, and in the future, to snooze.")
        return data


@dataclass(frozen=True)
class ThreadLine:
    seq: int
    created_at: datetime
    direction: str
    sender: str
    summary: str
    attachments: list[str]
    status: str
    is_private: bool
    deleted_at: datetime | None
    url: str


@dataclass(frozen=True)
class ParticipantLine:
    who: str
    role: str
    last_read_seq: int
    muted: bool
    joined_at: datetime


class _Echo:
    """A file for csv.writer that hands each line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _csv_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def conversation_csv_lines(
    *, schema_name: str, queryset: QuerySet[Conversation]
) -> Generator[str, None, None]:
    """The export, a line at a time, read through a server-side cursor. It runs after the view
    has returned, so it names its schema instead of trusting the connection's."""
    counts = (
        Message.objects.filter(conversation=OuterRef("pk"))
        .order_by()
        .values("conversation")
        .annotate(count=Count("pk"))
        .values("count")
    )
    rows = (
        queryset.select_related("contact", "channel", "assignee")
        .annotate(message_count=Coalesce(Subquery(counts, output_field=IntegerField()), Value(0)))
        .order_by("created_at", "pk")
    )
    writer = csv.writer(_Echo())
    with schema_context(schema_name):
        yield writer.writerow(EXPORT_HEADER)
        for conversation in rows.iterator(chunk_size=EXPORT_CHUNK):
            yield writer.writerow(
                [
                    _csv_cell(value)
                    for value in (
                        conversation.pk,
                        conversation.contact,
                        conversation.channel,
                        conversation.status,
                        # The names, lower-case like the statuses ("none", "urgent").
                        Conversation.Priority(conversation.priority).name.lower(),
                        conversation.assignee or "",
                        ",".join(conversation.labels),
                        conversation.created_at.isoformat(),
                        conversation.last_activity_at.isoformat()
                        if conversation.last_activity_at
                        else "",
                        getattr(conversation, "message_count", 0),
                    )
                ]
            )


async def _in_batches(lines: Generator[str, None, None]) -> AsyncIterator[str]:
    """Under ASGI Django would read a synchronous iterator into a list before sending it; this
    pulls a batch at a time on the request's thread (its connection and cursor)."""
    take = sync_to_async(lambda: "".join(itertools.islice(lines, EXPORT_CHUNK)))
    try:
        while chunk := await take():
            yield chunk
    finally:
        await sync_to_async(lines.close)()


@admin.register(Conversation, site=tenant_admin_site)
class ConversationAdmin(admin.ModelAdmin):
    form = ConversationForm
    list_display = (
        "contact",
        "channel",
        "status",
        "priority",
        "assignee",
        "label_list",
        "ai_active",
        "last_activity_at",
    )
    list_display_links = ("contact",)
    list_filter = ("status", "channel", "assignee", "priority", "ai_active")
    # The changelist is a fixed number of queries whatever the page holds.
    list_select_related = ("contact", "channel", "assignee")
    search_fields = ("contact__name", "contact__email", "contact__phone", "provider_thread_id")
    autocomplete_fields = ("assignee",)
    fieldsets = (
        (None, {"fields": ("contact", "channel", "type", "provider_thread_id")}),
        (
            "Handling",
            {"fields": ("status", "snoozed_until", "priority", "assignee", "labels", "ai_active")},
        ),
        (None, {"fields": ("last_activity_at", "created_at", "updated_at")}),
    )
    readonly_fields = (
        "contact",
        "channel",
        "type",
        "provider_thread_id",
        "last_activity_at",
        "created_at",
        "updated_at",
    )
    actions = ["resolve", "assign_to_me", "export_csv"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Conversations are opened by a contact's message on a channel (conversation_open).
        return False

    @admin.display(description="Labels")
    def label_list(self, obj: Conversation) -> str:
        return ", ".join(obj.labels)

    def save_model(self, request: HttpRequest, obj: Conversation, form: Any, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in form.changed_data}
        if "status" in fields or "snoozed_until" in fields:
            # conversation_update reads a missing snoozed_until as "clear it".
            fields["status"] = form.cleaned_data["status"]
            fields["snoozed_until"] = form.cleaned_data["snoozed_until"]
        if fields:
            conversation_update(conversation=obj, **fields)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        conversation = self.get_object(request, object_id)
        if conversation is not None and self.has_view_or_change_permission(request, conversation):
            extra_context = {**(extra_context or {}), **self._thread_context(conversation)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _thread_context(self, conversation: Conversation) -> dict[str, Any]:
        messages_qs = message_list(conversation=conversation)
        newest = list(messages_qs.order_by("-seq")[:THREAD_LIMIT])
        total = messages_qs.count() if len(newest) == THREAD_LIMIT else len(newest)
        thread = [
            ThreadLine(
                seq=message.seq,
                created_at=message.created_at,
                direction=message.get_direction_display(),
                sender=message_sender(message),
                summary=content_summary(message.content),
                attachments=[a.filename for a in message.attachments.all()],
                status=message.get_status_display(),
                is_private=message.is_private,
                deleted_at=message.deleted_at,
                url=_change_url(self.admin_site, message),
            )
            for message in reversed(newest)
        ]
        participants = [
            ParticipantLine(
                who=str(p.contact or p.operator or f"API key {p.api_key_id}"),
                role=p.get_role_display(),
                last_read_seq=p.last_read_seq,
                muted=p.muted,
                joined_at=p.joined_at,
            )
            for p in Participant.objects.filter(conversation=conversation)
            .select_related("contact", "operator")
            .order_by("joined_at")
        ]
        all_messages = reverse(f"{self.admin_site.name}:conversations_message_changelist")
        return {
            "thread": thread,
            "thread_total": total,
            "thread_all_url": f"{all_messages}?conversation={conversation.pk}",
            "participants": participants,
        }

    @admin.action(description="Resolve selected conversations", permissions=["change"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        resolved = 0
        for conversation in queryset.exclude(status=Conversation.Status.RESOLVED):
            conversation_set_status(conversation=conversation, status=Conversation.Status.RESOLVED)
            resolved += 1
        self.message_user(request, f"Resolved {resolved} conversation(s).", messages.SUCCESS)

    @admin.action(description="Assign selected conversations to me", permissions=["change"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        user_id = request.user.pk
        operator = Operator.objects.filter(user_id=user_id).first() if user_id else None
        if operator is None:
            self.message_user(
                request,
                "You are not an operator: add yourself under Operators first.",
                messages.ERROR,
            )
            return
        assigned = 0
        for conversation in queryset.exclude(assignee=operator):
            conversation_assign(conversation=conversation, operator=operator)
            assigned += 1
        self.message_user(
            request, f"Assigned {assigned} conversation(s) to {operator}.", messages.SUCCESS
        )

    @admin.action(description="Export selected conversations as CSV", permissions=["view"])
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> StreamingHttpResponse:
        lines = conversation_csv_lines(
            schema_name=tenant_connection().schema_name, queryset=queryset
        )
        content: Iterator[str] | AsyncIterator[str] = (
            _in_batches(lines) if isinstance(request, ASGIRequest) else lines
        )
        response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="conversations-{stamp}.csv"'
        return response


# --- Messages -------------------------------------------------------------------------------


class AttachmentInline(admin.TabularInline):
    model = Attachment
    extra = 0
    fields = ("filename", "content_type", "size", "file", "created_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Message, site=tenant_admin_site)
class MessageAdmin(admin.ModelAdmin):
    """Read-only: messages are written by the services (seq, delivery, events)."""

    list_display = (
        "conversation_link",
        "seq",
        "direction",
        "sender_type",
        "status",
        "short_text",
        "is_private",
        "deleted",
        "created_at",
    )
    list_filter = ("direction", "status", "sender_type", "is_private")
    list_select_related = ("conversation__contact", "conversation__channel")
    search_fields = ("text", "=provider_message_id")
    ordering = ("-created_at",)
    fields = (
        "conversation",
        "seq",
        "direction",
        "sender_type",
        "sender",
        "summary",
        "content",
        "status",
        "error_code",
        "error_message",
        "provider_message_id",
        "client_id",
        "is_private",
        "deleted_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = [AttachmentInline]
    actions = ["soft_delete"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return (
            super()
            .get_queryset(request)
            .select_related("sender_contact", "sender_operator", "conversation__contact")
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_soft_delete_permission(self, request: HttpRequest) -> bool:
        # The form is read-only for everyone; hiding a message still needs the change right.
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.display(description="Conversation", ordering="conversation")
    def conversation_link(self, obj: Message) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            _change_url(self.admin_site, obj.conversation),
            obj.conversation,
        )

    @admin.display(description="Text")
    def short_text(self, obj: Message) -> str:
        return Truncator(content_summary(obj.content)).chars(80)

    @admin.display(description="Deleted", boolean=True, ordering="deleted_at")
    def deleted(self, obj: Message) -> bool:
        return obj.deleted_at is not None

    @admin.display(description="Sender")
    def sender(self, obj: Message) -> str:
        return message_sender(obj)

    @admin.display(description="Content")
    def summary(self, obj: Message) -> str:
        return content_summary(obj.content)

    @admin.action(description="Soft-delete selected messages", permissions=["soft_delete"])
    def soft_delete(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        deleted = 0
        for message in queryset.filter(deleted_at__isnull=True):
            message_soft_delete(message=message)
            deleted += 1
        self.message_user(request, f"Deleted {deleted} message(s).", messages.SUCCESS)
