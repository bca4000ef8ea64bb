"""Reads on the conversation domain. Every lookup runs in the current tenant's schema, so
another tenant's id is simply not found."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

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
