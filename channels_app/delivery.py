"""Outbound delivery: one pending message to its provider, within the provider's rate, with
transient failures retried by the task and permanent ones failed at once with the reason."""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from channels_app.models import ChannelKind, DeadLetter
from channels_app.providers import provider_for
from channels_app.providers.base import OutboundMessage, Provider, RateLimit
from channels_app.selectors import STUCK_AFTER, messages_stuck_pending
from conversations.models import ContactIdentity, Message
from conversations.services.messages import message_status_update
from hub.db import PreparedQuery
from hub.exceptions import ApplicationError
from hub.http import ProviderError
from hub.ratelimit import token_bucket_take

logger = logging.getLogger(__name__)

# Their delivery is the hub's own push: the visitor's socket (web chat) or the integrator's
# webhook (API). Once recorded, the message is sent.
SELF_DELIVERED = {ChannelKind.WEBCHAT, ChannelKind.API}
# A pending message untouched this long has lost its delivery task. Longer than the longest
# backoff between attempts, so a message waiting on a retry is left to it.


class DeliveryDeferred(Exception):
    """Try again later: a transient provider failure or a full rate bucket. (A plain class: the
    exception machinery sets attributes on it, which a frozen dataclass refuses.)"""

    def __init__(
        self, code: str, message: str, retry_after: float | None, counts_as_attempt: bool = True
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.counts_as_attempt = counts_as_attempt


class NotRetryable(ApplicationError):
    status_code = 409
    default_code = "not_retryable"
    default_detail = "Only a failed outbound message can be retried."


def backoff_seconds(attempt: int, *, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, never sooner than the provider asked."""
    ceiling = min(
        settings.HUB_DELIVERY_BACKOFF_MAX_SECONDS,
        settings.HUB_DELIVERY_BACKOFF_BASE_SECONDS * 2**attempt,
    )
    jittered = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security
    return max(jittered, retry_after or 0)


# Before every send.
_EXTERNAL_ID = PreparedQuery(
    lambda contact_id, channel_kind: (
        ContactIdentity.objects.filter(contact_id=contact_id, channel_kind=channel_kind)
        .order_by("pk")
        .values_list("external_id", flat=True)[:1]
    ),
    contact_id=uuid.UUID,
    channel_kind=str,
)


def _outbound(message: Message) -> OutboundMessage:
    conversation = message.conversation
    identity = _EXTERNAL_ID.first(
        contact_id=conversation.contact_id, channel_kind=message.channel.kind
    )
    # A message has attachments only when its content names one (conversations.services).
    attachments = message.attachments.all() if message.content.get("attachment_id") else []
    media_urls = tuple(
        f"{settings.HUB_PUBLIC_URL}{attachment.file.url}"
        if attachment.file.url.startswith("/")
        else attachment.file.url
        for attachment in attachments
    )
    return OutboundMessage(
        message_id=str(message.pk),
        recipient=identity or "",
        thread_id=conversation.provider_thread_id,
        content=message.content,
        media_urls=media_urls,
    )


def _rate_limits(
    provider: Provider, outbound: OutboundMessage, config: dict[str, Any]
) -> list[RateLimit]:
    """The provider's published rates; a channel's `messages_per_second` replaces the first
    (account-wide) one, so a tenant can stay below a stricter limit of its own account."""
    limits = provider.rate_limits(message=outbound, config=config)
    override = config.get("messages_per_second")
    if override and limits:
        per_second = float(override)
        capacity = max(1, int(per_second))
        limits = [RateLimit(limits[0].scope, capacity, capacity / per_second), *limits[1:]]
    return limits


# Run inside the transaction that records a message as sent, so what they write commits with
# that record or not at all: processing charges an AI reply there. Each runs in a savepoint of
# its own; one that fails is logged and leaves the record alone (its work is then left to its
# own sweeper).
SentHook = Callable[[Message], None]
_sent_hooks: list[SentHook] = []


def delivery_sent_subscribe(hook: SentHook) -> None:
    if hook not in _sent_hooks:
        _sent_hooks.append(hook)


@transaction.atomic
def _record_sent(message: Message, *, provider_message_id: str = "") -> None:
    if message_status_update(
        message=message, status=Message.Status.SENT, provider_message_id=provider_message_id
    ):
        delivery_sent_hooks_run(message)


def delivery_sent_hooks_run(message: Message) -> None:
    """The hooks of a message just recorded sent, in the transaction that records it."""
    for hook in _sent_hooks:
        try:
            with transaction.atomic():
                hook(message)
        except Exception:
            logger.exception("delivery hook failed", extra={"message_id": str(message.pk)})


def message_deliver(
    *, message_id: uuid.UUID | str, message: Message | None = None
) -> Message | None:
    """Delivers one pending outbound message. Idempotent: a message no longer pending is left
    alone, so a redelivered task sends nothing twice. Raises DeliveryDeferred to be retried.
    `message`: the row itself, with its channel and conversation, from a worker that has it
    (it saves reading it again)."""
    if message is None:
        message = (
            Message.objects.select_related("channel", "conversation").filter(pk=message_id).first()
        )
    if message is None or message.status != Message.Status.PENDING or message.deleted_at:
        return message
    channel = message.channel
    if channel.kind in SELF_DELIVERED:
        _record_sent(message)
        return message
    provider = provider_for(kind=channel.kind, config=channel.config)
    if provider is None:
        message_status_update(
            message=message,
            status=Message.Status.FAILED,
            error_code="no_provider",
            error_message=f"No provider can send on a {channel.kind} channel.",
        )
        return message
    outbound = _outbound(message)
    for limit in _rate_limits(provider, outbound, channel.config):
        try:
            decision = token_bucket_take(
                key=f"hub:send-rate:{channel.pk}:{limit.scope}",
                capacity=limit.capacity,
                per_seconds=limit.per_seconds,
            )
        except RedisError as error:
            raise DeliveryDeferred("rate_limiter_unavailable", str(error), None, False) from error
        if not decision.allowed:
            raise DeliveryDeferred("rate_limited", limit.scope, decision.retry_after, False)
    try:
        result = provider.send(message=outbound, config=channel.config)
    except ProviderError as error:
        if error.transient:
            raise DeliveryDeferred(error.code, error.message, error.retry_after) from error
        logger.info(
            "delivery failed permanently",
            extra={"message_id": str(message.pk), "code": error.code},
        )
        message_status_update(
            message=message,
            status=Message.Status.FAILED,
            error_code=error.code,
            error_message=error.message,
        )
        return message
    _record_sent(message, provider_message_id=result.provider_message_id)
    return message


def message_deliver_or_retry(
    *, message_id: uuid.UUID | str, attempt: int = 0, message: Message | None = None
) -> None:
    """One delivery attempt, and what follows a deferral: the delivery task again after its
    backoff (the provider's Retry-After honoured), or the dead-letter list once the attempts
    run out. What the delivery task runs, and a worker that just wrote a reply (`message`)."""
    from channels_app.tasks import message_deliver_task

    try:
        message_deliver(message_id=message_id, message=message)
    except DeliveryDeferred as deferred:
        next_attempt = attempt + 1 if deferred.counts_as_attempt else attempt
        if next_attempt >= settings.HUB_DELIVERY_MAX_ATTEMPTS:
            message_dead_letter(
                message_id=message_id,
                attempts=next_attempt,
                code=deferred.code,
                reason=deferred.message,
            )
            return
        countdown = backoff_seconds(attempt, retry_after=deferred.retry_after)
        try:
            message_deliver_task.apply_async(
                args=[str(message_id)], kwargs={"attempt": next_attempt}, countdown=countdown
            )
        except (RedisError, BrokerError, OSError) as error:
            logger.warning(
                "broker unavailable; delivery retry left for the sweeper",
                extra={"message_id": str(message_id), "error": type(error).__name__},
            )


def message_deliver_enqueue(*, message_id: uuid.UUID | str) -> bool:
    """Hands a message to the delivery workers. Never raises: with the broker down the message
    stays pending and the stuck-delivery sweeper enqueues it later."""
    from channels_app.tasks import message_deliver_task

    try:
        message_deliver_task.delay(str(message_id))
    except (RedisError, BrokerError, OSError) as error:
        logger.warning(
            "broker unavailable; delivery left for the sweeper",
            extra={"message_id": str(message_id), "error": type(error).__name__},
        )
        return False
    return True


def pending_deliveries_sweep(*, older_than: timedelta = STUCK_AFTER) -> dict[str, int]:
    """Re-enqueues outbound messages still pending long after they were written: their task was
    lost (the broker was down at commit, or a worker died before acknowledging it). Delivery is
    idempotent, so a message that is merely slow is not sent twice."""
    stuck = messages_stuck_pending(older_than=older_than).values_list("pk", flat=True)[:1000]
    enqueued = sum(message_deliver_enqueue(message_id=message_id) for message_id in stuck)
    return {"enqueued": enqueued}


@transaction.atomic
def message_dead_letter(
    *, message_id: uuid.UUID | str, attempts: int, code: str, reason: str
) -> DeadLetter | None:
    """A message out of attempts: failed with the last reason, and kept in the dead-letter list."""
    message = Message.objects.filter(pk=message_id).first()
    if message is None:
        return None
    message_status_update(
        message=message, status=Message.Status.FAILED, error_code=code, error_message=reason
    )
    return DeadLetter.objects.create(
        message=message, attempts=attempts, error_code=code, error_message=reason
    )


@transaction.atomic
def message_retry(*, message: Message) -> Message:
    """Puts a failed outbound message back to pending and delivers it again."""
    updated = Message.objects.filter(
        pk=message.pk,
        direction=Message.Direction.OUT,
        status=Message.Status.FAILED,
        is_private=False,
    ).update(
        status=Message.Status.PENDING, error_code="", error_message="", updated_at=timezone.now()
    )
    if not updated:
        raise NotRetryable()
    DeadLetter.objects.filter(message=message, requeued_at__isnull=True).update(
        requeued_at=timezone.now()
    )
    message.refresh_from_db()
    message_id = str(message.pk)
    transaction.on_commit(lambda: message_deliver_enqueue(message_id=message_id))
    return message
