"""Conversations: opening, status, assignment, participants and read positions."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest, Least
from django.utils import timezone

from channels_app.models import Channel
from conversations.events import conversation_payload
from conversations.models import Contact, Conversation, Operator, Participant
from conversations.selectors import conversations_snoozed_due
from hub.db import PreparedQuery
from hub.events import event_publish
from hub.exceptions import ApplicationError, ConflictError
from tenants.selectors import tenant_current

logger = logging.getLogger(__name__)

Status = Conversation.Status


class InvalidStatus(ApplicationError):
    default_code = "invalid_status"


class GroupFull(ConflictError):
    default_code = "group_full"


# On every inbound message.
_LATEST_OF_THREAD = PreparedQuery(
    lambda channel_id, contact_id, provider_thread_id: Conversation.objects.filter(
        channel_id=channel_id, contact_id=contact_id, provider_thread_id=provider_thread_id
    ).order_by("-created_at")[:1],
    channel_id=uuid.UUID,
    contact_id=uuid.UUID,
    provider_thread_id=str,
)


# No savepoint of its own inside a transaction, as the message services (messages.py).
@transaction.atomic(savepoint=False)
def conversation_open(
    *,
    channel: Channel,
    contact: Contact,
    provider_thread_id: str = "",
    type: str = Conversation.Type.DIRECT,
) -> tuple[Conversation, bool]:
    """The conversation a contact's message on a channel belongs to: the latest one of that
    thread, or a new one with the contact as its customer."""
    existing: Conversation | None = _LATEST_OF_THREAD.first(
        channel_id=channel.pk, contact_id=contact.pk, provider_thread_id=provider_thread_id
    )
    if existing:
        # As the caller has them: whoever answers the message needs them.
        existing.channel, existing.contact = channel, contact
        return existing, False
    conversation = Conversation.objects.create(
        channel=channel,
        contact=contact,
        provider_thread_id=provider_thread_id,
        type=type,
        ai_active=channel.agent_id is not None,
        last_activity_at=timezone.now(),
    )
    Participant.objects.create(
        conversation=conversation, contact=contact, role=Participant.Role.CUSTOMER
    )
    event_publish(name="conversation.created", payload=conversation_payload(conversation))
    return conversation, True


def _save(conversation: Conversation, fields: list[str]) -> Conversation:
    conversation.save(update_fields=[*fields, "updated_at"])
    event_publish(name="conversation.updated", payload=conversation_payload(conversation))
    return conversation


def _apply_status(
    conversation: Conversation, status: str, snoozed_until: datetime | None
) -> list[str]:
    if status not in Status.values:
        raise InvalidStatus(f"Unknown status {status!r}.", details={"status": ["Unknown status."]})
    if status == Status.SNOOZED:
        if snoozed_until is None or snoozed_until <= timezone.now():
            raise InvalidStatus(
                "Snoozing needs snoozed_until in the future.",
                details={"snoozed_until": ["Required, and in the future, to snooze."]},
            )
    else:
        snoozed_until = None
    conversation.status = status
    conversation.snoozed_until = snoozed_until
    return ["status", "snoozed_until"]


def _apply_assignee(conversation: Conversation, operator: Operator | None) -> list[str]:
    conversation.assignee = operator
    if operator is not None:
        Participant.objects.get_or_create(
            conversation=conversation, operator=operator, defaults={"role": Participant.Role.AGENT}
        )
    return ["assignee"]


@transaction.atomic
def conversation_set_status(
    *, conversation: Conversation, status: str, snoozed_until: datetime | None = None
) -> Conversation:
    """`snoozed` needs a time in the future and wakes then; other statuses clear it."""
    return _save(conversation, _apply_status(conversation, status, snoozed_until))


@transaction.atomic
def conversation_assign(*, conversation: Conversation, operator: Operator | None) -> Conversation:
    """Assigns (or unassigns) an operator, who joins the conversation as its agent."""
    return _save(conversation, _apply_assignee(conversation, operator))


@transaction.atomic
def conversation_update(*, conversation: Conversation, **fields: Any) -> Conversation:
    """Changes any of status (with snoozed_until), assignee, priority, labels and the AI switch,
    and publishes one `conversation.updated`."""
    changed: list[str] = []
    if "status" in fields or "snoozed_until" in fields:
        changed += _apply_status(
            conversation, fields.get("status", conversation.status), fields.get("snoozed_until")
        )
    if "assignee" in fields:
        changed += _apply_assignee(conversation, fields["assignee"])
    for key in ("priority", "ai_active"):
        if key in fields:
            setattr(conversation, key, fields[key])
            changed.append(key)
    if "labels" in fields:
        conversation.labels = sorted({label.strip() for label in fields["labels"] if label.strip()})
        changed.append("labels")
    return _save(conversation, changed) if changed else conversation


def conversation_reopen_for_contact(*, conversation: Conversation) -> None:
    """The contact wrote: a resolved or snoozed conversation is open again."""
    if conversation.status in (Status.RESOLVED, Status.SNOOZED):
        conversation.status = Status.OPEN
        conversation.snoozed_until = None
        _save(conversation, ["status", "snoozed_until"])


def conversations_wake_snoozed() -> dict[str, int]:
    """Opens every snoozed conversation whose time has come (a per-tenant job)."""
    woken = 0
    for conversation_id in conversations_snoozed_due().values_list("pk", flat=True):
        with transaction.atomic():
            conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
            if conversation.status == Status.SNOOZED:
                conversation.status = Status.OPEN
                conversation.snoozed_until = None
                _save(conversation, ["status", "snoozed_until"])
                woken += 1
    return {"woken": woken}


@transaction.atomic
def participant_add(
    *,
    conversation: Conversation,
    role: str,
    contact: Contact | None = None,
    operator: Operator | None = None,
) -> Participant:
    """Adds a contact or an operator. A group holds at most the tenant's limit: 409 past it."""
    locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
    lookup = {"contact": contact} if contact is not None else {"operator": operator}
    existing = Participant.objects.filter(conversation=locked, **lookup).first()
    if existing:
        return existing
    if locked.type == Conversation.Type.GROUP:
        limit = tenant_current().max_group_participants
        members = Participant.objects.filter(conversation=locked, api_key_id__isnull=True).count()
        if members >= limit:
            raise GroupFull(f"This group already holds its limit of {limit} participants.")
    return Participant.objects.create(conversation=locked, role=role, **lookup)


def _reader(
    conversation: Conversation,
    *,
    operator: Operator | None,
    api_key_id: uuid.UUID | None,
    contact: Contact | None = None,
) -> Participant:
    if contact is not None:
        participant, _ = Participant.objects.get_or_create(
            conversation=conversation, contact=contact, defaults={"role": Participant.Role.CUSTOMER}
        )
    elif operator is not None:
        participant, _ = Participant.objects.get_or_create(
            conversation=conversation, operator=operator, defaults={"role": Participant.Role.AGENT}
        )
    else:
        participant, _ = Participant.objects.get_or_create(
            conversation=conversation,
            api_key_id=api_key_id,
            defaults={"role": Participant.Role.BUSINESS},
        )
    return participant


@transaction.atomic
def participant_mark_read(
    *,
    conversation: Conversation,
    seq: int | None = None,
    operator: Operator | None = None,
    api_key_id: uuid.UUID | None = None,
    contact: Contact | None = None,
) -> Participant:
    """Moves the reader's position forward to `seq` (default: the newest), never back. The
    reader is an operator, an API key, or a contact (a web chat visitor's read receipts)."""
    participant = _reader(conversation, operator=operator, api_key_id=api_key_id, contact=contact)
    target = conversation.last_seq if seq is None else seq
    Participant.objects.filter(pk=participant.pk).update(
        last_read_seq=Greatest(F("last_read_seq"), Least(target, conversation.last_seq))
    )
    participant.refresh_from_db()
    return participant


@transaction.atomic
def participant_set_muted(
    *,
    conversation: Conversation,
    muted: bool,
    operator: Operator | None = None,
    api_key_id: uuid.UUID | None = None,
) -> Participant:
    participant = _reader(conversation, operator=operator, api_key_id=api_key_id)
    participant.muted = muted
    participant.save(update_fields=["muted"])
    return participant
