"""Reads on the conversation domain. Every lookup runs in the current tenant's schema, so
another tenant's id is simply not found."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.contrib.postgres.search import SearchQuery
from django.db.models import (
    F,
    IntegerField,
    Q,
    QuerySet,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from conversations.models import (
    Attachment,
    Contact,
    Conversation,
    Message,
    Operator,
    Participant,
)
from hub.db import KeptPlanQuery, PreparedQuery, prepared_exists
from hub.exceptions import NotFoundError


@dataclass(frozen=True)
class Reader:
    """Whose read position `unread_count` counts from: an operator or an API key."""

    operator_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None


def _valid_uuid(value: uuid.UUID | str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _unread_count(reader: Reader) -> RawSQL:
    """The reader's inbound messages after its read position, a subquery per conversation row.
    The read position is correlated with the conversation rather than with each message, so
    PostgreSQL reads it once per row and ranges over (conversation, seq) from it.

    Written as SQL: built and compiled through the ORM's nested subqueries it took 1.6 ms of
    CPU per list page, two thirds of building and compiling the page's query (the list's
    figures in docs/performance.md, change 25). tests/conversations hold its counts."""
    reader_column = "operator_id" if reader.operator_id is not None else "api_key_id"
    reader_id = reader.operator_id if reader.operator_id is not None else reader.api_key_id
    # Only the reader's id is a value, and it is a parameter.
    return RawSQL(  # noqa: S611
        _UNREAD_COUNT_SQL.format(reader_column=reader_column),
        (reader_id,),
        output_field=IntegerField(),
    )


# Table names and the direction are the models' own constants, not input.
_UNREAD_COUNT_SQL = f"""(
    SELECT COUNT(*) FROM "{Message._meta.db_table}" unread
    WHERE unread."conversation_id" = "{Conversation._meta.db_table}"."id"
      AND unread."direction" = '{Message.Direction.IN.value}'
      AND unread."deleted_at" IS NULL
      AND unread."seq" > COALESCE((
          SELECT read_position."last_read_seq" FROM "{Participant._meta.db_table}" read_position
          WHERE read_position."conversation_id" = "{Conversation._meta.db_table}"."id"
            AND read_position."{{reader_column}}" = %s
          LIMIT 1
      ), 0)
)"""  # noqa: S608


def _conversations_for_reader(
    *,
    reader: Reader,
    status: str | None = None,
    channel_id: uuid.UUID | None = None,
    assignee_id: uuid.UUID | None = None,
    unassigned: bool = False,
    label: str | None = None,
    q: str | None = None,
    updated_after: datetime | None = None,
) -> QuerySet[Conversation]:
    """The filtered conversations with the reader's `unread_count` and `activity_at` (the last
    activity, or the creation for a conversation with none: what lists order by, served by the
    `conversation_activity_idx` indexes). Nothing joined: callers pick what they show."""
    conversations = Conversation.objects.annotate(
        unread_count=_unread_count(reader),
        activity_at=Coalesce("last_activity_at", "created_at"),
    )
    if status:
        conversations = conversations.filter(status=status)
    if channel_id:
        conversations = conversations.filter(channel_id=channel_id)
    if assignee_id:
        conversations = conversations.filter(assignee_id=assignee_id)
    if unassigned:
        conversations = conversations.filter(assignee__isnull=True)
    if label:
        conversations = conversations.filter(labels__contains=[label])
    if updated_after:
        conversations = conversations.filter(updated_at__gt=updated_after)
    if q:
        matching = Message.objects.filter(
            search_vector=SearchQuery(q, config="simple", search_type="websearch"),
            deleted_at__isnull=True,
        ).values("conversation_id")
        conversations = conversations.filter(pk__in=matching)
    return conversations


CONVERSATION_RELATED = ("contact", "channel", "assignee", "last_message")


def conversation_get(
    *, conversation_id: uuid.UUID | str, related: tuple[str, ...] = CONVERSATION_RELATED
) -> Conversation:
    """The conversation with its contact, channel, assignee and last message joined in, or only
    the `related` a caller reads (each join, and the decryption of what it brings, is paid on
    every call)."""
    conversation = None
    if _valid_uuid(conversation_id):
        conversation = _conversation_query(related).first(conversation_id=conversation_id)
    if conversation is None:
        raise NotFoundError("No such conversation.")
    return conversation


@lru_cache(maxsize=32)
def _conversation_query(related: tuple[str, ...]) -> PreparedQuery:
    # Every API call on a conversation starts here: compiled once per `related` (change 46).
    def build(conversation_id: uuid.UUID) -> QuerySet[Conversation]:
        conversations = Conversation.objects.filter(pk=conversation_id).order_by()
        return conversations.select_related(*related) if related else conversations

    return PreparedQuery(build, conversation_id=uuid.UUID)


def message_list(*, conversation: Conversation) -> QuerySet[Message]:
    return (
        Message.objects.filter(conversation=conversation)
        .select_related("sender_contact", "sender_operator")
        .prefetch_related("attachments")
    )


def message_get(*, message_id: uuid.UUID | str) -> Message:
    message = None
    if _valid_uuid(message_id):
        message = (
            Message.objects.select_related("conversation", "channel").filter(pk=message_id).first()
        )
    if message is None:
        raise NotFoundError("No such message.")
    return message


def contact_list(*, q: str | None = None) -> QuerySet[Contact]:
    contacts = Contact.objects.prefetch_related("identities")
    if q:
        digits = "".join(ch for ch in q if ch.isdigit())
        match = Q(name__icontains=q) | Q(email__icontains=q)
        if len(digits) >= 3:
            match |= Q(phone__contains=digits)
        contacts = contacts.filter(match)
    return contacts


def contact_get(*, contact_id: uuid.UUID | str) -> Contact:
    contact = None
    if _valid_uuid(contact_id):
        contact = Contact.objects.prefetch_related("identities").filter(pk=contact_id).first()
    if contact is None:
        raise NotFoundError("No such contact.")
    return contact


def operator_get(*, operator_id: uuid.UUID | str) -> Operator:
    operator = Operator.objects.filter(pk=operator_id).first() if _valid_uuid(operator_id) else None
    if operator is None:
        raise NotFoundError("No such operator.")
    return operator


# --- The REST API's reads. Each runs a fixed number of queries whatever the page size. ---


def conversation_list_by_activity(
    *, reader: Reader, unassigned: bool = False, **filters: Any
) -> QuerySet[Conversation]:
    """Conversations with the reader's `unread_count` and `activity_at`, and their contact,
    channel, assignee and last message (with its sender and files) joined in or prefetched:
    everything the inbox shows. `unassigned` keeps only conversations without an assignee."""
    return (
        _conversations_for_reader(reader=reader, unassigned=unassigned, **filters)
        .select_related("contact", "channel", "assignee", "last_message__sender_operator")
        .prefetch_related("last_message__attachments")
    )


PREFETCHED_ATTACHMENTS = "prefetched_attachments"

# What the API's outputs read (api/serializers.py) and nothing more: every other column costs
# decoding on each row (the channel's config a decryption). A field added to an output and not
# here still works, at one query per row, which the constant-query tests catch.
_MESSAGE_SHOWN = (
    "id",
    "conversation_id",
    "seq",
    "direction",
    "sender_type",
    "sender_contact_id",
    "sender_operator",
    "sender_operator__display_name",
    "content",
    "status",
    "provider_message_id",
    "client_id",
    "error_code",
    "error_message",
    "is_private",
    "deleted_at",
    "created_at",
    "updated_at",
)
_CONVERSATION_SHOWN = (
    "id",
    "channel_id",
    "contact",
    "contact__name",
    "contact__avatar_url",
    "type",
    "status",
    "snoozed_until",
    "priority",
    "assignee_id",
    "labels",
    "ai_active",
    "provider_thread_id",
    "last_message",
    *(f"last_message__{name}" for name in _MESSAGE_SHOWN if name != "id"),
    "last_activity_at",
    "created_at",
    "updated_at",
)


def messages_attachments_load(messages: Iterable[Message | None]) -> None:
    """Puts each message's files, as a plain list, in `prefetched_attachments` (what the outputs
    read). A message has files only when its content names one (conversations.services), so
    only those are read, in one query: a page without files costs none (a prefetch read the
    files of every message on the page, a sixth of a list page's CPU)."""
    naming: dict[str, Message] = {}
    for message in messages:
        if message is None:
            continue
        setattr(message, PREFETCHED_ATTACHMENTS, [])
        content = message.content
        if isinstance(content, dict) and content.get("attachment_id"):
            naming[str(message.pk)] = message
    if not naming:
        return
    files = Attachment.objects.only(
        "id", "message_id", "file", "filename", "content_type", "size"
    ).filter(message_id__in=list(naming))
    for attachment in files:
        getattr(naming[str(attachment.message_id)], PREFETCHED_ATTACHMENTS).append(attachment)


def conversation_list_for_api(
    *, reader: Reader, unassigned: bool = False, **filters: Any
) -> QuerySet[Conversation]:
    """`conversation_list_by_activity` as the API shows it: the contact and last message joined
    in, the channel and assignee as ids only. The last messages' files are read by
    `messages_attachments_load` for the page shown."""
    return (
        _conversations_for_reader(reader=reader, unassigned=unassigned, **filters)
        .select_related("contact", "last_message__sender_operator")
        .only(*_CONVERSATION_SHOWN)
    )


# The values of a list page's query and their types: the reader, the position after which the
# page starts, and the filters `_conversations_for_reader` takes as values.
_PAGE_VALUE_TYPES: dict[str, type] = {
    "reader_id": uuid.UUID,
    "after_at": datetime,
    "after_id": uuid.UUID,
    "status": str,
    "channel_id": uuid.UUID,
    "assignee_id": uuid.UUID,
    "label": str,
    "q": str,
    "updated_after": datetime,
}


def conversation_page_for_api(
    *,
    reader: Reader,
    after: tuple[datetime, uuid.UUID] | None,
    size: int,
    unassigned: bool = False,
    **filters: Any,
) -> list[Conversation]:
    """Up to `size` conversations of `conversation_list_for_api` in the list's order (newest
    activity first, then the id), after the position (`activity_at`, id) of the last one shown,
    with their last messages' files. A page is read by a query compiled once per combination of
    the filters given and page size: built and compiled through the ORM, with DRF's cursor
    filtering and slicing it, it cost a third of a list page's CPU (docs/performance.md,
    change 46)."""
    reader_field = "operator_id" if reader.operator_id is not None else "api_key_id"
    values = {name: value for name, value in filters.items() if value}
    values["reader_id"] = getattr(reader, reader_field)
    if after is not None:
        values["after_at"], values["after_id"] = after
    query = _conversation_page_query(
        reader_field=reader_field, names=frozenset(values), unassigned=unassigned, size=size
    )
    page: list[Conversation] = query.all(**values)
    messages_attachments_load(conversation.last_message for conversation in page)
    return page


@lru_cache(maxsize=256)
def _conversation_page_query(
    *, reader_field: str, names: frozenset[str], unassigned: bool, size: int
) -> KeptPlanQuery:
    def build(
        *,
        reader_id: uuid.UUID,
        after_at: datetime | None = None,
        after_id: uuid.UUID | None = None,
        **filters: Any,
    ) -> QuerySet[Conversation]:
        conversations = conversation_list_for_api(
            reader=Reader(**{reader_field: reader_id}), unassigned=unassigned, **filters
        )
        if after_at is not None:
            # `activity_at <= after_at` bounds the index's range; the rest skips what was shown.
            conversations = conversations.filter(
                Q(activity_at__lte=after_at),
                Q(activity_at__lt=after_at) | Q(activity_at=after_at, id__lt=after_id),
            )
        return conversations.order_by(F("activity_at").desc(), F("id").desc())[:size]

    return KeptPlanQuery(build, **{name: _PAGE_VALUE_TYPES[name] for name in names})


def conversation_get_for_reader(
    *, conversation_id: uuid.UUID | str, reader: Reader
) -> Conversation:
    """One conversation as the API's list shows it, with the reader's `unread_count`."""
    conversation = None
    if _valid_uuid(conversation_id):
        conversation = conversation_list_for_api(reader=reader).filter(pk=conversation_id).first()
    if conversation is None:
        raise NotFoundError("No such conversation.")
    messages_attachments_load([conversation.last_message])
    return conversation


def unread_count_get(*, conversation: Conversation, last_read_seq: int) -> int:
    """Inbound messages after a read position (deleted ones are not waiting to be read)."""
    return Message.objects.filter(
        conversation=conversation,
        direction=Message.Direction.IN,
        deleted_at__isnull=True,
        seq__gt=last_read_seq,
    ).count()


def message_list_after(
    *, conversation: Conversation | uuid.UUID, after_seq: int | None = None
) -> QuerySet[Message]:
    """The conversation's messages as the API shows them (the columns and relations its output
    reads; their files through `messages_attachments_load`), only those after `after_seq` when
    given (a client catching up from the last seq it has)."""
    messages = (
        Message.objects.filter(conversation=conversation)
        .select_related("sender_operator")
        .only(*_MESSAGE_SHOWN)
    )
    if after_seq is not None:
        messages = messages.filter(seq__gt=after_seq)
    return messages


def message_page(*, conversation_id: uuid.UUID, after_seq: int | None, size: int) -> list[Message]:
    """Up to `size` of `message_list_after` in seq order, with their files: a history page, read
    by a query compiled once per page size (change 46, as `conversation_page_for_api`)."""
    values: dict[str, Any] = {"conversation_id": conversation_id}
    if after_seq is not None:
        values["after_seq"] = after_seq
    page: list[Message] = _message_page_query(after=after_seq is not None, size=size).all(**values)
    messages_attachments_load(page)
    return page


@lru_cache(maxsize=256)
def _message_page_query(*, after: bool, size: int) -> PreparedQuery:
    def build(conversation_id: uuid.UUID, after_seq: int | None = None) -> QuerySet[Message]:
        messages = message_list_after(conversation=conversation_id, after_seq=after_seq)
        return messages.order_by("seq")[:size]

    if after:
        return PreparedQuery(build, conversation_id=uuid.UUID, after_seq=int)
    return PreparedQuery(build, conversation_id=uuid.UUID)


def message_get_in_conversation(
    *, conversation: Conversation, message_id: uuid.UUID | str
) -> Message:
    """A message of this conversation; one of another conversation is not found, as an unknown
    id is."""
    message = None
    if _valid_uuid(message_id):
        message = message_list(conversation=conversation).filter(pk=message_id).first()
    if message is None:
        raise NotFoundError("No such message.")
    return message


def participant_list(*, conversation: Conversation) -> QuerySet[Participant]:
    """The conversation's contacts and operators. An API key's row only keeps its read position;
    it is no member, so it is left out."""
    return Participant.objects.filter(
        conversation=conversation, api_key_id__isnull=True
    ).select_related("contact", "operator")


def participant_find(
    *, conversation: Conversation, contact: Contact | None = None, operator: Operator | None = None
) -> Participant | None:
    if contact is not None:
        return Participant.objects.filter(conversation=conversation, contact=contact).first()
    return Participant.objects.filter(conversation=conversation, operator=operator).first()


def contact_has_conversations(*, contact: Contact) -> bool:
    """Whether the contact is the customer of a conversation or a participant in one."""
    return (
        Conversation.objects.filter(contact=contact).exists()
        or Participant.objects.filter(contact=contact).exists()
    )


def conversations_snoozed_due(*, now: datetime | None = None) -> QuerySet[Conversation]:
    """Snoozed conversations whose time has come."""
    return Conversation.objects.filter(
        status=Conversation.Status.SNOOZED, snoozed_until__lte=now or timezone.now()
    )


_ANY_SNOOZED_DUE = prepared_exists(lambda now: conversations_snoozed_due(now=now), now=datetime)


def conversations_snoozed_due_exist() -> bool:
    """The wake job's check, in every tenant every minute (hub.db.prepared_exists)."""
    return _ANY_SNOOZED_DUE(now=timezone.now())
