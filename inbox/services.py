"""Operator notifications: recorded, then pushed to the live inbox after commit."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from conversations.live import inbox_group
from conversations.models import Conversation, Message, Operator
from conversations.services.conversations import (
    conversation_assign,
    conversation_set_status,
    conversation_update,
    participant_mark_read,
)
from conversations.services.messages import message_send
from conversations.services.operators import operator_create, operator_set_availability
from hub.events import event_publish
from hub.exceptions import ApplicationError, ConflictError
from inbox.models import CannedResponse, Notification
from inbox.presence import operator_presence_touch
from inbox.selectors import operator_for_user, operator_list
from tenants.connection import tenant_connection

logger = logging.getLogger(__name__)


@transaction.atomic
def notification_create(
    *,
    kind: str,
    title: str,
    body: str = "",
    conversation_id: uuid.UUID | str | None = None,
    operator_id: uuid.UUID | str | None = None,
) -> Notification:
    notification = Notification.objects.create(
        kind=kind,
        title=title,
        body=body,
        conversation_id=conversation_id,
        operator_id=operator_id,
    )
    event_publish(
        name="notification.created",
        payload={
            "id": str(notification.pk),
            "kind": kind,
            "title": title,
            "body": body,
            "conversation": str(conversation_id) if conversation_id else None,
            "operator": str(operator_id) if operator_id else None,
            "created_at": notification.created_at.isoformat(),
        },
    )
    return notification


# --- The live inbox: what an operator does to a conversation. ---------------------------------
#
# The inbox page (HTTP forms) and the inbox socket (frames) are two thin doors to these, so an
# action behaves the same whichever one the operator's browser used.


class InvalidAction(ApplicationError):
    default_code = "invalid_action"
    default_detail = "Unknown action."


class DuplicateShortcut(ConflictError):
    default_code = "duplicate_shortcut"
    default_detail = "A canned response with this shortcut already exists."


ACTIONS = ("take_over", "hand_back", "assign", "resolve", "reopen", "snooze")
SNOOZE_PRESETS = {
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
}


def _locked(conversation: Conversation) -> Conversation:
    # The row as it is now, held until commit: two operators' actions apply one after the other.
    return Conversation.objects.select_for_update().get(pk=conversation.pk)


@transaction.atomic
def inbox_reply(
    *,
    conversation: Conversation,
    operator: Operator,
    text: str,
    client_id: str = "",
    is_private: bool = False,
) -> tuple[Message, bool]:
    """An operator's text reply (or private note), idempotent by `client_id`.

    A reply (not a note) means a person is answering now: the AI stops, an unassigned
    conversation becomes the replier's and a pending, snoozed or resolved one opens again. The
    operator has read everything up to their own message.
    """
    locked = _locked(conversation)
    message, created = message_send(
        conversation=locked,
        content={"type": "text", "text": text.strip()},
        sender_type=Message.SenderType.OPERATOR,
        sender_operator=operator,
        client_id=client_id,
        is_private=is_private,
    )
    if created and not is_private:
        changes: dict[str, Any] = {}
        if locked.ai_active:
            changes["ai_active"] = False
        if locked.assignee_id is None:
            changes["assignee"] = operator
        if locked.status != Conversation.Status.OPEN:
            changes["status"] = Conversation.Status.OPEN
        if changes:
            conversation_update(conversation=locked, **changes)
    if created:
        participant_mark_read(conversation=locked, operator=operator, seq=message.seq)
    return message, created


@transaction.atomic
def inbox_take_over(*, conversation: Conversation, operator: Operator) -> Conversation:
    """The operator answers from now on: the AI stops, the conversation is theirs and open."""
    return conversation_update(
        conversation=_locked(conversation),
        ai_active=False,
        assignee=operator,
        status=Conversation.Status.OPEN,
    )


@transaction.atomic
def inbox_hand_back(*, conversation: Conversation) -> Conversation:
    """The AI answers again. The assignee stays, as the person a new handoff goes back to."""
    locked = _locked(conversation)
    if locked.channel.agent_id is None:
        raise InvalidAction(
            "This conversation's channel has no AI agent to hand it back to.", code="no_agent"
        )
    return conversation_update(conversation=locked, ai_active=True, status=Conversation.Status.OPEN)


def snooze_until(value: str) -> datetime:
    """A preset (`1h`, `4h`, `24h`, `7d`) or an ISO 8601 time with its offset."""
    if value in SNOOZE_PRESETS:
        return timezone.now() + SNOOZE_PRESETS[value]
    parsed = parse_datetime(value) if value else None
    if parsed is None or timezone.is_naive(parsed):
        raise InvalidAction(
            "Snooze until a preset (1h, 4h, 24h, 7d) or an ISO 8601 time with its offset.",
            code="validation_error",
            details={"until": ["A preset or an ISO 8601 time with its offset."]},
        )
    return parsed


@transaction.atomic
def inbox_apply_action(
    *,
    conversation: Conversation,
    operator: Operator,
    action: str,
    assignee_id: str | None = None,
    until: str = "",
) -> Conversation:
    """One of `ACTIONS` on a conversation. `assign` takes `assignee_id` (empty: unassign),
    `snooze` takes `until`. Unknown actions or operators are 400 `invalid_action`."""
    if action == "take_over":
        return inbox_take_over(conversation=conversation, operator=operator)
    if action == "hand_back":
        return inbox_hand_back(conversation=conversation)
    locked = _locked(conversation)
    if action == "assign":
        assignee = None
        if assignee_id:
            if _is_uuid(assignee_id):
                assignee = operator_list().filter(pk=assignee_id).first()
            if assignee is None:
                raise InvalidAction(
                    "No such operator.",
                    code="validation_error",
                    details={"operator": ["No such operator."]},
                )
        return conversation_assign(conversation=locked, operator=assignee)
    if action == "resolve":
        return conversation_set_status(conversation=locked, status=Conversation.Status.RESOLVED)
    if action == "reopen":
        return conversation_set_status(conversation=locked, status=Conversation.Status.OPEN)
    if action == "snooze":
        return conversation_set_status(
            conversation=locked,
            status=Conversation.Status.SNOOZED,
            snoozed_until=snooze_until(until),
        )
    raise InvalidAction(f"Unknown action {action!r}; one of {', '.join(ACTIONS)}.")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@transaction.atomic
def inbox_mark_read(*, conversation: Conversation, operator: Operator, seq: int | None) -> int:
    """Moves the operator's read position forward (never back); returns where it is now."""
    participant = participant_mark_read(conversation=conversation, operator=operator, seq=seq)
    return participant.last_read_seq


@transaction.atomic
def operator_ensure(*, user: User) -> Operator | None:
    """The user's operator, created on their first visit if they are staff (people who may sign
    in to the tenant's console answer its conversations). Others get None."""
    existing = operator_for_user(user=user)
    if existing is not None or not (user.is_active and user.is_staff):
        return existing
    role = Operator.Role.ADMIN if user.is_superuser else Operator.Role.OPERATOR
    try:
        with transaction.atomic():
            return operator_create(
                user=user, display_name=user.get_full_name() or user.get_username(), role=role
            )
    except IntegrityError:
        # Two first requests at once: the other one created it.
        return operator_for_user(user=user)


@transaction.atomic
def operator_availability_set(*, operator: Operator, availability: str) -> Operator:
    """Online or away: stored on the operator, kept in presence while a socket lives, and
    pushed to every inbox of the tenant after commit."""
    if availability not in (Operator.Availability.ONLINE, Operator.Availability.AWAY):
        raise InvalidAction(
            "Availability is online or away.",
            code="validation_error",
            details={"availability": ["online or away"]},
        )
    operator_set_availability(operator=operator, availability=availability)
    schema = tenant_connection().schema_name
    payload = {
        "id": str(operator.pk),
        "display_name": operator.display_name,
        "availability": availability,
    }
    operator_presence_touch(schema=schema, operator_id=str(operator.pk), availability=availability)
    transaction.on_commit(lambda: _push_to_inbox(schema, "operator.updated", payload))
    return operator


def _push_to_inbox(schema: str, event: str, payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            inbox_group(schema), {"type": "hub.event", "event": event, "payload": payload}
        )
    except Exception as error:
        logger.warning("live push failed", extra={"event": event, "error": type(error).__name__})


@transaction.atomic
def notification_mark_read(*, notification: Notification) -> Notification:
    """Read for every operator it was for: a notification for the team is handled once."""
    if notification.read_at is None:
        notification.read_at = timezone.now()
        notification.save(update_fields=["read_at"])
    return notification


@transaction.atomic
def notifications_mark_all_read(*, operator: Operator) -> int:
    return Notification.objects.filter(
        Q(operator__isnull=True) | Q(operator=operator), read_at__isnull=True
    ).update(read_at=timezone.now())


# --- Canned responses ----------------------------------------------------------------------


@transaction.atomic
def canned_response_create(*, shortcut: str, text: str) -> CannedResponse:
    """409 `duplicate_shortcut` when the shortcut is taken (checked by the unique index, so two
    concurrent creates cannot both win)."""
    try:
        with transaction.atomic():
            return CannedResponse.objects.create(shortcut=shortcut, text=text)
    except IntegrityError:
        raise DuplicateShortcut(details={"shortcut": ["Already taken."]}) from None


@transaction.atomic
def canned_response_update(
    *, canned_response: CannedResponse, shortcut: str | None = None, text: str | None = None
) -> CannedResponse:
    if shortcut is not None:
        canned_response.shortcut = shortcut
    if text is not None:
        canned_response.text = text
    try:
        with transaction.atomic():
            canned_response.save()
    except IntegrityError:
        raise DuplicateShortcut(details={"shortcut": ["Already taken."]}) from None
    return canned_response


@transaction.atomic
def canned_response_delete(*, canned_response: CannedResponse) -> None:
    canned_response.delete()
