from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from channels_app import delivery, inbound, media
from conversations.models import Message
from tenants.connection import tenant_connection


@shared_task(name="channels.inbound_event_process", acks_late=True)
def inbound_event_process_task(event_id: str) -> None:
    """Stores an event's messages, then answers them in this task (processing.services)."""
    from processing.services import conversation_drain_requested, conversation_drains_inline

    stored: list[Message] = []
    with conversation_drains_inline(stored=stored):
        if inbound.inbound_event_process(event_id=event_id, stored=stored) is None:
            # Processed already: this is the task again after its worker died (Celery requeues
            # it), maybe before answering what it stored.
            schema = tenant_connection().schema_name
            for conversation_id in inbound.inbound_event_conversations(event_id=event_id):
                conversation_drain_requested(schema=schema, conversation_id=conversation_id)


@shared_task(name="channels.message_deliver", acks_late=True, max_retries=None)
def message_deliver_task(message_id: str, attempt: int = 0) -> None:
    """Delivers a message; transient failures come back here with backoff (the provider's
    Retry-After honoured), until the attempts run out and the message is dead-lettered."""
    delivery.message_deliver_or_retry(message_id=message_id, attempt=attempt)


@shared_task(
    name="channels.media_fetch",
    bind=True,
    acks_late=True,
    max_retries=None,
    soft_time_limit=240,
    time_limit=300,
)
def media_fetch_task(self: Task[Any, Any], message_id: str, attempt: int = 0) -> None:
    """Fetches an inbound message's media; transient failures come back here with backoff (the
    provider's Retry-After honoured) until the attempts run out and the failure is recorded."""
    try:
        media.media_fetch(message_id=message_id)
    except media.MediaFetchDeferred as deferred:
        if attempt + 1 >= media.MAX_ATTEMPTS:
            media.media_fetch_failed(
                message_id=message_id,
                code=deferred.code,
                reason=f"{deferred.message} (gave up after {attempt + 1} attempts)",
            )
            return
        countdown = delivery.backoff_seconds(attempt, retry_after=deferred.retry_after)
        self.apply_async(args=[message_id], kwargs={"attempt": attempt + 1}, countdown=countdown)
