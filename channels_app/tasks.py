from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.conf import settings

from channels_app import delivery, inbound, media


@shared_task(name="channels.inbound_event_process", acks_late=True)
def inbound_event_process_task(event_id: str) -> None:
    inbound.inbound_event_process(event_id=event_id)


@shared_task(name="channels.message_deliver", bind=True, acks_late=True, max_retries=None)
def message_deliver_task(self: Task[Any, Any], message_id: str, attempt: int = 0) -> None:
    """Delivers a message; transient failures come back here with backoff (the provider's
    Retry-After honoured), until the attempts run out and the message is dead-lettered."""
    try:
        delivery.message_deliver(message_id=message_id)
    except delivery.DeliveryDeferred as deferred:
        next_attempt = attempt + 1 if deferred.counts_as_attempt else attempt
        if next_attempt >= settings.HUB_DELIVERY_MAX_ATTEMPTS:
            delivery.message_dead_letter(
                message_id=message_id,
                attempts=next_attempt,
                code=deferred.code,
                reason=deferred.message,
            )
            return
        countdown = delivery.backoff_seconds(attempt, retry_after=deferred.retry_after)
        self.apply_async(args=[message_id], kwargs={"attempt": next_attempt}, countdown=countdown)


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
