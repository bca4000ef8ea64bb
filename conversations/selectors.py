"""Reads on the conversation domain. Every lookup runs in the current tenant's schema, so
another tenant's id is simply not found."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.postgres.search import SearchQuery
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from conversations.models import Contact, Conversation, Message, Operator, Participant
from hub.exceptions import NotFoundError


@dataclass(frozen=True)
class Reader:
    """Whose read position `unread_count` counts from: an operator or an API key."""

    operator_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None

    def participant_filter(self) -> Q:
        if self.operator_id is not None:
            return Q(operator_id=self.operator_id)
        return Q(api_key_id=self.api_key_id)


def _valid_uuid(value: uuid.UUID | str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def conversation_list(
    *,
    reader: Reader,
    status: str | None = None,
    channel_id: uuid.UUID | None = None,
    assignee_id: uuid.UUID | None = None,
    label: str | None = None,
    q: str | None = None,
    updated_after: datetime | None = None,
) -> QuerySet[Conversation]:
    """Conversations with their contact, channel, assignee and last message joined in, and the
    reader's `unread_count` computed in the same query: one query whatever the page size."""
    read_position = Participant.objects.filter(
        reader.participant_filter(), conversation=OuterRef("conversation_id")
    ).values("last_read_seq")[:1]
    unread = (
        Message.objects.filter(
            conversation=OuterRef("pk"),
            direction=Message.Direction.IN,
            deleted_at__isnull=True,
            seq__gt=Coalesce(Subquery(read_position), Value(0)),
        )
        .order_by()
        .values("conversation")
        .annotate(count=Count("pk"))
        .values("count")
    )
    conversations = Conversation.objects.select_related(
        "contact", "channel", "assignee", "last_message"
    ).annotate(unread_count=Coalesce(Subquery(unread, output_field=IntegerField()), Value(0)))
    if status:
        conversations = conversations.filter(status=status)
    if channel_id:
        conversations = conversations.filter(channel_id=channel_id)
    if assignee_id:
        conversations = conversations.filter(assignee_id=assignee_id)
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


def conversation_get(*, conversation_id: uuid.UUID | str) -> Conversation:
    conversation = None
    if _valid_uuid(conversation_id):
        conversation = (
            Conversation.objects.select_related("contact", "channel", "assignee", "last_message")
            .filter(pk=conversation_id)
            .first()
        )
    if conversation is None:
        raise NotFoundError("No such conversation.")
    return conversation


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
    """`conversation_list` with `activity_at` (the last activity, or the creation for a
    conversation with none) to order by, and everything its last message shows joined in or
    prefetched in one more query. `unassigned` keeps only conversations without an assignee."""
    conversations = (
        conversation_list(reader=reader, **filters)
        .annotate(activity_at=Coalesce("last_activity_at", "created_at"))
        .select_related("last_message__sender_operator")
        .prefetch_related("last_message__attachments")
    )
    if unassigned:
        conversations = conversations.filter(assignee__isnull=True)
    return conversations


def conversation_get_for_reader(
    *, conversation_id: uuid.UUID | str, reader: Reader
) -> Conversation:
    """One conversation as the list shows it, with the reader's `unread_count`."""
    conversation = None
    if _valid_uuid(conversation_id):
        conversation = (
            conversation_list_by_activity(reader=reader).filter(pk=conversation_id).first()
        )
    if conversation is None:
        raise NotFoundError("No such conversation.")
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
    *, conversation: Conversation, after_seq: int | None = None
) -> QuerySet[Message]:
    """The conversation's messages, only those after `after_seq` when given (a client catching
    up from the last seq it has)."""
    messages = message_list(conversation=conversation)
    if after_seq is not None:
        messages = messages.filter(seq__gt=after_seq)
    return messages


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
