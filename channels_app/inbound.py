"""The durable inbox: a webhook body is committed first, then turned into conversation data by a
Celery task. Redelivered bodies are recognised by the provider's event id and processed once."""

from __future__ import annotations

import logging
import uuid
from functools import partial
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from channels_app.media import media_fetch_enqueue, media_needs_fetch
from channels_app.models import Channel, ChannelKind, InboundEvent
from channels_app.providers import provider_for
from channels_app.providers.base import InboundMessage, StatusUpdate
from channels_app.selectors import inbound_events_stranded
from conversations.content import InvalidContent, content_validate
from conversations.models import Contact, Conversation, Message
from conversations.services.attachments import attachment_create
from conversations.services.contacts import contact_identify
from conversations.services.conversations import conversation_open
from conversations.services.edits import message_edit
from conversations.services.messages import message_receive, message_status_update
from hub.db import PreparedQuery, insert_unless_conflict, save_fields
from hub.exceptions import ApplicationError, ConflictError

logger = logging.getLogger(__name__)

# Failed attempts before an event is marked failed (an operator can retry it from the admin).
MAX_ATTEMPTS = 10


def inbound_event_record(
    *, channel: Channel, provider_event_id: str, body: bytes, content_type: str
) -> tuple[InboundEvent, bool]:
    """Commits the raw event. Returns `(event, created)`; `created` is False for a redelivery."""
    event = InboundEvent(
        channel=channel,
        provider_event_id=provider_event_id[:255],
        body=body.decode("utf-8", errors="replace"),
        content_type=content_type[:100],
    )
    # One statement: a redelivery is turned down by the unique constraint, not an error.
    created = insert_unless_conflict(event)
    if not created:
        existing = InboundEvent.objects.get(
            channel=channel, provider_event_id=event.provider_event_id
        )
        return existing, False
    return event, True


def inbound_event_enqueue(*, event_id: uuid.UUID | str) -> bool:
    """Hands an event to the workers. Never raises: with Redis down the event waits in the
    database and the sweeper enqueues it later."""
    from channels_app.tasks import inbound_event_process_task

    try:
        inbound_event_process_task.delay(str(event_id))
    except (RedisError, BrokerError, OSError) as error:
        logger.warning(
            "broker unavailable; inbound event left for the sweeper",
            extra={"event_id": str(event_id), "error": type(error).__name__},
        )
        InboundEvent.objects.filter(pk=event_id).update(queued_at=None)
        return False
    return True


def inbound_events_requeue(*, event_ids: list[uuid.UUID]) -> int:
    """Hands stored events to the workers again (the sweep, an operator's retry), noting when,
    so the sweep leaves them be while they wait in the queue. Returns how many were queued.

    The note is committed before the tasks are queued (callers run outside a transaction): a
    task skips an event whose row another transaction holds, so noting afterwards could lock
    an event just as its task came for it, leaving it unprocessed until the next sweep."""
    InboundEvent.objects.filter(pk__in=event_ids).update(queued_at=timezone.now())
    return sum(inbound_event_enqueue(event_id=event_id) for event_id in event_ids)


# The event a task processes, with its channel and agent, locked: on every inbound message.
_EVENT_LOCKED = PreparedQuery(
    # `of=self`: locking the joined channel row too would skip every event whose channel
    # another webhook or worker is writing under (a key-share lock), leaving it to the sweeper
    # a minute later (found by the bench, docs/performance.md).
    lambda event_id: (
        InboundEvent.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("channel__agent")
        .filter(pk=event_id, status=InboundEvent.Status.RECEIVED)
    ),
    event_id=uuid.UUID,
)


def _apply_message(channel: Channel, part: InboundMessage, stored: list[Message]) -> None:
    if part.edit_of:
        original = Message.objects.filter(channel=channel, provider_message_id=part.edit_of).first()
        if original is not None:
            message_edit(message=original, content=part.content)
            return
    contact, _ = contact_identify(
        channel_kind=channel.kind,
        external_id=part.external_id,
        name=part.name,
        **{k: v for k, v in part.profile.items() if k in {"phone", "email", "language"}},
    )
    conversation, _ = conversation_open(
        channel=channel,
        contact=contact,
        provider_thread_id=part.thread_id,
        type=part.conversation_type,
    )
    if part.file is not None:
        _receive_with_file(conversation, contact, part)
        return
    message, created = message_receive(
        conversation=conversation,
        contact=contact,
        content=part.content,
        provider_message_id=part.provider_message_id,
    )
    if created:
        stored.append(message)
    if created and media_needs_fetch(content=message.content):
        # After the commit, so the task finds the message; a redelivery creates nothing and
        # enqueues nothing.
        transaction.on_commit(partial(media_fetch_enqueue, message_id=message.pk))


def _receive_with_file(conversation: Conversation, contact: Contact, part: InboundMessage) -> None:
    """A message whose file came inside the event: stored through Django's default storage as
    an Attachment of the conversation, named by the content and linked to the message. Keyed by
    the provider id like every message, so a replayed event stores the file once."""
    assert part.file is not None
    if Message.objects.filter(
        channel_id=conversation.channel_id, provider_message_id=part.provider_message_id
    ).exists():
        return
    attachment = attachment_create(
        conversation=conversation,
        file=ContentFile(part.file.data),
        filename=part.file.filename,
        content_type=part.file.content_type,
    )
    message, created = message_receive(
        conversation=conversation,
        contact=contact,
        content={**part.content, "attachment_id": str(attachment.pk)},
        provider_message_id=part.provider_message_id,
    )
    if not created:
        attachment.file.delete(save=False)
        attachment.delete()
        return
    attachment.message = message
    attachment.save(update_fields=["message"])


def _apply_status(channel: Channel, part: StatusUpdate) -> None:
    message = Message.objects.filter(
        channel=channel, provider_message_id=part.provider_message_id
    ).first()
    if message is None:
        logger.info("status for an unknown message ignored", extra={"channel_kind": channel.kind})
        return
    message_status_update(
        message=message,
        status=part.status,
        error_code=part.error_code,
        error_message=part.error_message,
    )


def inbound_event_process(
    *, event_id: uuid.UUID | str, stored: list[Message] | None = None
) -> InboundEvent | None:
    """Turns one stored event into contacts, conversations, messages and status changes.

    Idempotent: a processed event is skipped, and messages are keyed by the provider's id, so a
    task run twice (a worker killed mid-way) stores nothing twice. `stored`: gets the messages
    it stored (text ones), with their conversation, channel, agent and contact loaded.

    An event that fails to apply leaves nothing of itself: its transaction is rolled back whole
    and the attempt recorded in another. A savepoint around the applying would have kept the
    event's lock across the failure, but cost two round trips on every event, failed or not
    (docs/performance.md, change 59).
    """
    failure: Exception | None = None
    try:
        with transaction.atomic():
            event: InboundEvent | None = _EVENT_LOCKED.first(event_id=event_id)
            if event is None:
                return None
            try:
                _apply_event(event, [] if stored is None else stored)
            except Exception as error:
                failure = error
                raise
            event.attempts += 1
            event.status = InboundEvent.Status.PROCESSED
            event.processed_at = timezone.now()
            event.error = ""
            save_fields(event, ["attempts", "status", "processed_at", "error"])
            return event
    except Exception:
        if failure is None:
            raise
        logger.exception("inbound event failed", extra={"event_id": str(event_id)})
        return _record_failure(event_id=event_id, failure=failure)


def _apply_event(event: InboundEvent, stored: list[Message]) -> None:
    channel = event.channel
    provider = provider_for(kind=channel.kind, config=channel.config)
    if provider is None:
        raise LookupError(f"no provider for {channel.kind}")
    payload = provider.decode(body=event.body.encode())
    for part in provider.parse(payload=payload, config=channel.config):
        if isinstance(part, InboundMessage):
            _apply_message(channel, part, stored)
        else:
            _apply_status(channel, part)


def _record_failure(*, event_id: uuid.UUID | str, failure: Exception) -> InboundEvent | None:
    """Counts a failed attempt on an event whose applying was rolled back. None when another
    worker holds or has processed the event meanwhile: its own attempt is the one to count."""
    with transaction.atomic():
        event: InboundEvent | None = _EVENT_LOCKED.first(event_id=event_id)
        if event is None:
            return None
        event.attempts += 1
        event.error = f"{type(failure).__name__}: {failure}"[:2000]
        if event.attempts >= MAX_ATTEMPTS:
            event.status = InboundEvent.Status.FAILED
        event.queued_at = None  # the sweep tries it again
        save_fields(event, ["attempts", "error", "status", "queued_at"])
        return event


def inbound_event_conversations(*, event_id: uuid.UUID | str) -> list[uuid.UUID]:
    """The conversations a processed event stored its messages in ([] for an event not yet
    processed, or whose body no longer parses): for the event's task run again after its
    worker died, to answer them now rather than when the sweeper comes by."""
    event = (
        InboundEvent.objects.select_related("channel")
        .filter(pk=event_id, status=InboundEvent.Status.PROCESSED)
        .first()
    )
    if event is None:
        return []
    channel = event.channel
    provider = provider_for(kind=channel.kind, config=channel.config)
    if provider is None:
        return []
    try:
        payload = provider.decode(body=event.body.encode())
        parts = provider.parse(payload=payload, config=channel.config)
    except Exception:
        logger.warning("a processed event no longer parses", extra={"event_id": str(event.pk)})
        return []
    ids = [part.provider_message_id for part in parts if isinstance(part, InboundMessage)]
    return list(
        Message.objects.filter(
            channel=channel, direction=Message.Direction.IN, provider_message_id__in=ids
        )
        .values_list("conversation_id", flat=True)
        .distinct()
    )


def inbound_events_sweep() -> dict[str, int]:
    """Enqueues events left unprocessed: the broker down at receipt, a failed attempt, or a task
    lost with its worker (handed over long enough ago; `inbound_events_stranded`)."""
    stranded = list(inbound_events_stranded().values_list("pk", flat=True)[:1000])
    return {"enqueued": inbound_events_requeue(event_ids=stranded)}


class NotAnApiChannel(ApplicationError):
    default_code = "not_an_api_channel"
    default_detail = "Only a channel of kind `api` takes inbound messages from the API."


class ChannelDisabled(ConflictError):
    default_code = "channel_disabled"
    default_detail = "The channel is disabled; enable it to receive messages."


@transaction.atomic
def api_message_receive(
    *,
    channel: Channel,
    external_id: str,
    name: str,
    content: Any,
    external_message_id: str,
) -> tuple[Message, bool]:
    """An integrator's inbound message on an API channel: the contact identified by its
    `api` identity (created on first sight), its conversation on the channel opened, the
    message received, and processing started by `message.created` like any channel's.

    Idempotent by `external_message_id` within the channel: a repeat returns the first message
    (`created` False) and writes nothing. Invalid content writes nothing either.
    """
    if channel.kind != ChannelKind.API:
        raise NotAnApiChannel()
    if not channel.enabled:
        raise ChannelDisabled()
    existing = Message.objects.filter(
        channel=channel, provider_message_id=external_message_id
    ).first()
    if existing is not None:
        return existing, False
    content_validate(content)
    if content.get("attachment_id"):
        # An upload belongs to a conversation the integrator cannot name yet: files come by url.
        raise InvalidContent(
            details={"content.attachment_id": ["Not accepted here; give the file's url."]}
        )
    contact, _ = contact_identify(channel_kind=ChannelKind.API, external_id=external_id, name=name)
    conversation, _ = conversation_open(channel=channel, contact=contact)
    return message_receive(
        conversation=conversation,
        contact=contact,
        content=content,
        provider_message_id=external_message_id,
    )
