"""Messages: the gap-free seq, idempotent creates, monotonic delivery status, soft delete.

The services on every message's path are atomic without a savepoint of their own when called
inside a transaction (`savepoint=False`): each savepoint is two round trips, and none of their
callers carries on after they fail; a caller that wants to must open its own savepoint."""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from conversations.content import content_validate
from conversations.events import message_payload
from conversations.models import Attachment, Contact, Conversation, Message, Operator
from hub.db import insert_unless_conflict, update_statement
from hub.events import event_publish

logger = logging.getLogger(__name__)

Status = Message.Status

# The statuses a message may move to each status from. Anything else is a late or repeated
# callback (providers deliver out of order) and is ignored, never an error.
ALLOWED_FROM: dict[str, set[str]] = {
    Status.SENT: {Status.PENDING},
    Status.DELIVERED: {Status.PENDING, Status.SENT},
    Status.READ: {Status.PENDING, Status.SENT, Status.DELIVERED},
    Status.FAILED: {Status.PENDING, Status.SENT},
}

ERASED_CONTENT = {"type": "unsupported", "description": "erased"}


# Taking the next seq and moving the conversation past it are two plain statements on every
# message; through the ORM, compiling them cost more than running them (docs/performance.md).
_CONVERSATION = Conversation._meta.db_table
_MESSAGES = Message._meta.db_table
# The message a repeated `client_id` (per conversation) or `provider_message_id` (per channel)
# names, the client id's first, for conversation `c`.
_EXISTING = (
    f"(SELECT m.id FROM {_MESSAGES} m"  # noqa: S608
    " WHERE (%s <> '' AND m.conversation_id = c.id AND m.client_id = %s)"
    " OR (%s <> '' AND m.channel_id = c.channel_id AND m.provider_message_id = %s)"
    " ORDER BY m.client_id = %s DESC LIMIT 1)"
)
# The conversation's last seq, locked, and a message already stored under the same ids, in one
# statement: nearly always there is none.
_LOCK_SEQ_SQL = (
    f"SELECT c.last_seq, {_EXISTING} FROM {_CONVERSATION} c"  # noqa: S608
    " WHERE c.id = %s FOR UPDATE OF c"
)
_EXISTING_SQL = f"SELECT {_EXISTING} FROM {_CONVERSATION} c WHERE c.id = %s"  # noqa: S608
_ADVANCE_SQL = (
    f"UPDATE {_CONVERSATION} SET last_seq = %s, last_message_id = %s,"  # noqa: S608
    " last_activity_at = %s, updated_at = %s WHERE id = %s"
)


def _ids(client_id: str, provider_message_id: str) -> list[str]:
    """`_EXISTING`'s values."""
    return [client_id, client_id, provider_message_id, provider_message_id, client_id]


@transaction.atomic(savepoint=False)
def message_create(
    *,
    conversation: Conversation,
    direction: str,
    sender_type: str,
    content: Any,
    status: str,
    sender_contact: Contact | None = None,
    sender_operator: Operator | None = None,
    provider_message_id: str = "",
    client_id: str = "",
    is_private: bool = False,
    attachment: Attachment | None = None,
) -> tuple[Message, bool]:
    """Stores a message with the next seq of its conversation. Returns `(message, created)`.

    The seq is taken under the conversation row's lock in this transaction, so concurrent
    writers get consecutive seqs with no gap or duplicate. A repeated `client_id` (per
    conversation) or `provider_message_id` (per channel) returns the first message unchanged.
    `attachment`: the uploaded file the content names, linked to the new message before its
    `message.created` event is built, so the event carries it.
    """
    normalised, text = content_validate(content)
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_SEQ_SQL, [*_ids(client_id, provider_message_id), conversation.pk])
        row = cursor.fetchone()
    if row is None:
        raise Conversation.DoesNotExist(f"No conversation {conversation.pk}")
    last_seq, existing_id = row
    if existing_id is not None:
        return Message.objects.get(pk=existing_id), False
    now = timezone.now()
    message = Message(
        conversation=conversation,
        channel_id=conversation.channel_id,
        seq=last_seq + 1,
        direction=direction,
        sender_type=sender_type,
        sender_contact=sender_contact,
        sender_operator=sender_operator,
        content=normalised,
        text=text,
        status=status,
        provider_message_id=provider_message_id,
        client_id=client_id,
        is_private=is_private,
    )
    if not insert_unless_conflict(message):
        # The same provider id arrived for another conversation of the channel meanwhile, or
        # the same ids were stored by a transaction this one waited for at the lock (committed
        # after this statement's snapshot, so the first look could not see it).
        with connection.cursor() as cursor:
            cursor.execute(_EXISTING_SQL, [*_ids(client_id, provider_message_id), conversation.pk])
            (found,) = cursor.fetchone()
        if found is None:
            raise IntegrityError(f"message {message.seq} of {conversation.pk} conflicts")
        return Message.objects.get(pk=found), False
    if attachment is not None:
        attachment.message = message
        attachment.save(update_fields=["message"])
    with connection.cursor() as cursor:
        cursor.execute(_ADVANCE_SQL, [message.seq, message.pk, now, now, conversation.pk])
    conversation.last_seq, conversation.last_message = message.seq, message
    conversation.last_activity_at = conversation.updated_at = now
    event_publish(name="message.created", payload=message_payload(message))
    return message, True


@transaction.atomic(savepoint=False)
def message_receive(
    *,
    conversation: Conversation,
    contact: Contact,
    content: Any,
    provider_message_id: str = "",
) -> tuple[Message, bool]:
    """An inbound message from the contact. A resolved or snoozed conversation opens again."""
    from conversations.services.conversations import conversation_reopen_for_contact

    message, created = message_create(
        conversation=conversation,
        direction=Message.Direction.IN,
        sender_type=Message.SenderType.CONTACT,
        sender_contact=contact,
        content=content,
        status=Status.RECEIVED,
        provider_message_id=provider_message_id,
    )
    if created:
        conversation_reopen_for_contact(conversation=conversation)
    return message, created


@transaction.atomic(savepoint=False)
def message_send(
    *,
    conversation: Conversation,
    content: Any,
    sender_type: str,
    sender_operator: Operator | None = None,
    client_id: str = "",
    is_private: bool = False,
    enqueue_delivery: bool = True,
    attachment: Attachment | None = None,
) -> tuple[Message, bool]:
    """An outbound message, recorded as `pending` and handed to the channel's delivery after
    commit; on the web chat and the API, recorded `sent`. A private note is stored for operators
    only and never delivered.
    `enqueue_delivery=False`: the caller sends it itself once committed (processing does, from
    the worker that wrote the AI's reply)."""
    from channels_app.delivery import (
        SELF_DELIVERED,
        delivery_sent_hooks_run,
        message_deliver_enqueue,
    )

    # On the web chat and the API, delivery is the hub's own push when this commits (the
    # visitor's socket, the integrator's webhook): the message is sent once recorded, with no
    # delivery task and no second write to say so.
    pushed = enqueue_delivery and not is_private and conversation.channel.kind in SELF_DELIVERED
    message, created = message_create(
        conversation=conversation,
        direction=Message.Direction.OUT,
        sender_type=sender_type,
        sender_operator=sender_operator,
        content=content,
        status=Status.SENT if is_private or pushed else Status.PENDING,
        client_id=client_id,
        is_private=is_private,
        attachment=attachment,
    )
    if created and pushed:
        delivery_sent_hooks_run(message)
    elif created and not is_private and enqueue_delivery:
        message_id = str(message.pk)
        transaction.on_commit(lambda: message_deliver_enqueue(message_id=message_id))
    return message, created


@transaction.atomic(savepoint=False)
def message_status_update(
    *,
    message: Message,
    status: str,
    provider_message_id: str = "",
    error_code: str = "",
    error_message: str = "",
) -> bool:
    """Moves a message's status forward only. Returns False (and logs) for a status that would
    go backwards or repeat: a late `sent` never overwrites `delivered` or `read`."""
    allowed = ALLOWED_FROM.get(status)
    if allowed is None:
        raise ValueError(f"Not a status a delivery reports: {status!r}")
    changes: dict[str, Any] = {"status": status, "updated_at": timezone.now()}
    if provider_message_id:
        changes["provider_message_id"] = provider_message_id
    if status == Status.FAILED:
        changes["error_code"] = error_code[:100]
        changes["error_message"] = error_message
    # Built once per set of fields it writes (four at most): compiling the ORM's update cost
    # more than running it (docs/performance.md, change 34).
    sql, _ = update_statement(Message, tuple(changes), condition="status = ANY(%s)")
    with connection.cursor() as cursor:
        cursor.execute(sql, [*changes.values(), message.pk, list(allowed)])
        updated = cursor.rowcount
    if not updated:
        logger.info(
            "message status not moved backwards",
            extra={"message_id": str(message.pk), "status": status},
        )
        return False
    for name, value in changes.items():
        setattr(message, name, value)
    event_publish(name="message.updated", payload=message_payload(message))
    return True


@transaction.atomic
def message_soft_delete(*, message: Message) -> Message:
    if message.deleted_at is None:
        message.deleted_at = timezone.now()
        message.save(update_fields=["deleted_at", "updated_at"])
        event_publish(name="message.updated", payload=message_payload(message))
    return message
