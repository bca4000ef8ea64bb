"""Writes on outgoing webhooks: subscriptions, fanning domain events out into deliveries, and
attempting each delivery with retries (exponential backoff, full jitter) until it succeeds or
its retry window closes and it is dead."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.fields import DateTimeField

from hub.exceptions import ApplicationError, ConflictError
from hub.memo import memo_changed, memo_forget, memo_get
from hub.redis import get_redis
from tenants.connection import tenant_connection
from webhooks.client import PostResult, webhook_post
from webhooks.events import WEBHOOK_EVENTS
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from webhooks.security import UnsafeDestination, webhook_url_check
from webhooks.selectors import RETRYABLE, webhook_deliveries_overdue
from webhooks.signing import SIGNATURE_HEADER, webhook_secret_generate, webhook_signature

logger = logging.getLogger(__name__)

Status = WebhookDelivery.Status

EDITABLE_FIELDS = ("url", "events", "secret", "enabled", "description")
USER_AGENT = "Hub-Webhooks/1"

# A retry further off than this is left to the sweeper rather than a countdown task: a worker
# holds every ETA task it has taken in memory, and the Redis broker hands unacknowledged ones
# out again after its visibility timeout.
COUNTDOWN_LIMIT_SECONDS = 300
SWEEP_BATCH = 500
# A backlog is swept every minute; each delivery is enqueued at most once per this long, so
# a stalled worker does not find the queue grown by the same deliveries many times over.
SWEEP_DEDUPE_SECONDS = 600
# A countdown task may arrive a little early when the hosts' clocks disagree; it still counts
# as due. Kept well under the shortest retry delay (1 s), so a duplicate task sent right after
# a failure never counts as due.
DUE_SLACK = timedelta(milliseconds=500)


class InvalidWebhook(ApplicationError):
    default_code = "validation_error"
    default_detail = "The request is invalid."


class WebhookDisabled(ConflictError):
    default_code = "webhook_disabled"
    default_detail = "This webhook is disabled; enable it to redeliver."


# --- Subscriptions -----------------------------------------------------------------------------


def _validate(subscription: WebhookSubscription, *, check_url: bool) -> None:
    try:
        subscription.full_clean()
    except DjangoValidationError as error:
        raise InvalidWebhook(details=error.message_dict) from None
    if check_url:
        try:
            webhook_url_check(subscription.url)
        except UnsafeDestination as error:
            raise InvalidWebhook(details={"url": [str(error)]}) from None


def _normalise(fields: dict[str, Any]) -> dict[str, Any]:
    if isinstance(fields.get("url"), str):
        fields["url"] = fields["url"].strip()
    if isinstance(fields.get("events"), list | tuple):
        # Order kept, repeats dropped: ["a", "b", "a"] is a subscription to a and b.
        fields["events"] = list(dict.fromkeys(fields["events"]))
    return fields


@transaction.atomic
def webhook_subscription_create(
    *,
    url: str,
    events: list[str],
    secret: str | None = None,
    enabled: bool = True,
    description: str = "",
) -> WebhookSubscription:
    """A new subscription. Without a secret one is generated; the caller shows it once.

    Raises InvalidWebhook naming the field: an unknown event, a short secret, or a URL that is
    not http(s), does not resolve, or resolves to an address webhooks may not reach.
    """
    fields = _normalise({"url": url, "events": events})
    subscription = WebhookSubscription(
        secret=secret if secret is not None else webhook_secret_generate(),
        enabled=enabled,
        description=description,
        **fields,
    )
    _validate(subscription, check_url=True)
    subscription.save()
    _subscribed_changed()
    return subscription


@transaction.atomic
def webhook_subscription_update(
    *, subscription: WebhookSubscription, **fields: Any
) -> WebhookSubscription:
    """Changes any of url, events, secret, enabled and description. The URL is checked again
    only when it changes. Retries in flight use the new URL and secret from their next attempt."""
    changed = [key for key in EDITABLE_FIELDS if key in fields]
    for key, value in _normalise({key: fields[key] for key in changed}).items():
        setattr(subscription, key, value)
    _validate(subscription, check_url="url" in changed)
    subscription.save(update_fields=[*changed, "updated_at"])
    _subscribed_changed()
    return subscription


@transaction.atomic
def webhook_subscription_delete(*, subscription: WebhookSubscription) -> None:
    """Deletes the subscription with its deliveries and their attempts.

    A worker attempting one of its deliveries holds that row locked while it posts and records
    the attempt. Locking the deliveries first waits for it, so the attempt it commits is
    deleted too instead of failing the delete on its foreign key; attempts that start later
    skip the locked rows and find nothing. The subscription is locked first so that no new
    delivery joins it meanwhile."""
    list(WebhookSubscription.objects.select_for_update().filter(pk=subscription.pk).values("pk"))
    list(WebhookDelivery.objects.select_for_update().filter(subscription=subscription).values("pk"))
    subscription.delete()
    _subscribed_changed()


# --- Which events a tenant subscribes to --------------------------------------------------------
#
# Every domain event asked the database for the subscriptions listing it, tenants without any
# included (5 % of a worker's time, docs/performance.md). Each process remembers the set of
# events a tenant's enabled subscriptions list, in the memo (hub/memo.py): a change through the
# services shows at once in its own process and within about a second in the others, with no
# Redis read per event (change 44). Only "nobody subscribes" skips the dispatch, which still
# asks the database for the subscriptions themselves.


def _subscribed_key() -> tuple[str, str]:
    return ("webhook-events", tenant_connection().schema_name)


def _subscribed_changed() -> None:
    """Forgets this tenant's set now (a read later in this transaction sees the change) and,
    once committed, in every process."""
    memo_forget(_subscribed_key())
    memo_changed()


def _subscribed_events() -> frozenset[str]:
    lists = WebhookSubscription.objects.filter(enabled=True).values_list("events", flat=True)
    return frozenset(name for names in lists for name in names)


def webhook_event_subscribed(*, event: str) -> bool:
    """Whether an enabled subscription of the current tenant lists `event`."""
    return event in memo_get(_subscribed_key(), _subscribed_events)


# --- Fanning events out --------------------------------------------------------------------------


def _enqueue_after_commit(*, delivery_ids: list[str], countdown: float | None = None) -> None:
    """Hands deliveries to Celery once the transaction commits, under the current schema.

    The schema is captured now: the callback may run after an outer `schema_context` has ended.
    A failed enqueue (Redis down) loses nothing: the sweeper finds the due delivery later.
    """
    if not delivery_ids:
        return
    schema = tenant_connection().schema_name

    def enqueue() -> None:
        from webhooks.tasks import webhook_delivery_attempt_task

        with schema_context(schema):
            for delivery_id in delivery_ids:
                try:
                    # No publish retries: an API request publishing an event must not hang on
                    # a broker that is down.
                    webhook_delivery_attempt_task.apply_async(
                        args=[delivery_id], countdown=countdown, retry=False
                    )
                except Exception:
                    logger.warning(
                        "could not enqueue a webhook delivery; the sweeper will",
                        extra={"delivery_id": delivery_id},
                        exc_info=True,
                    )

    transaction.on_commit(enqueue)


def webhook_event_subscriber(schema_name: str, event_name: str, payload: dict[str, Any]) -> None:
    """The `hub.events` subscriber: called after the commit that raised the event, with the
    schema it was raised in."""
    if event_name not in WEBHOOK_EVENTS:
        return
    # Usually published in the schema it is delivered in: no switch (and no `SET search_path`).
    same = tenant_connection().schema_name == schema_name
    with contextlib.nullcontext() if same else schema_context(schema_name):
        if webhook_event_subscribed(event=event_name):
            webhook_event_dispatch(event=event_name, payload=payload)


@transaction.atomic
def webhook_event_dispatch(
    *, event: str, payload: dict[str, Any], event_id: uuid.UUID | None = None
) -> list[WebhookDelivery]:
    """One pending delivery per enabled subscription of the current tenant that lists `event`,
    each handed to a task after commit. The deliveries of one event share its `event_id`."""
    subscription_ids = list(
        WebhookSubscription.objects.filter(enabled=True, events__contains=[event]).values_list(
            "pk", flat=True
        )
    )
    if not subscription_ids:
        return []
    # Payloads come from serializers and may hold UUIDs, datetimes and Decimals.
    data = json.loads(json.dumps(payload, cls=DjangoJSONEncoder))
    now = timezone.now()
    shared_event_id = event_id or uuid.uuid4()
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            subscription_id=subscription_id,
            event=event,
            event_id=shared_event_id,
            payload=data,
            next_attempt_at=now,
        )
        for subscription_id in subscription_ids
    )
    _enqueue_after_commit(delivery_ids=[str(delivery.pk) for delivery in deliveries])
    return deliveries


# --- Delivering ----------------------------------------------------------------------------------


def webhook_body(*, delivery: WebhookDelivery, tenant_slug: str) -> bytes:
    """The exact bytes POSTed and signed: `{"id", "event", "created_at", "tenant", "data"}`."""
    envelope = {
        "id": str(delivery.pk),
        "event": delivery.event,
        "created_at": DateTimeField().to_representation(delivery.created_at),
        "tenant": tenant_slug,
        "data": delivery.payload,
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def webhook_headers(*, delivery: WebhookDelivery, secret: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: webhook_signature(secret=secret, body=body),
        "X-Hub-Event": delivery.event,
        "X-Hub-Delivery": str(delivery.pk),
    }


def webhook_retry_delay(*, failures: int) -> float:
    """Seconds before the next attempt after `failures` failed ones: "full jitter" (uniform
    between 0 and min(cap, base * 2^(failures-1))), at least one second. The jitter spreads
    the retries of many deliveries to one receiver that came back up at once."""
    base = float(settings.HUB_WEBHOOKS_RETRY_BASE_SECONDS)
    cap = float(settings.HUB_WEBHOOKS_RETRY_MAX_INTERVAL_SECONDS)
    ceiling = min(cap, base * 2 ** min(max(failures - 1, 0), 32))
    return max(1.0, random.uniform(0, ceiling))  # noqa: S311 - jitter, not a secret


def _record_attempt(delivery: WebhookDelivery, result: PostResult, *, started: Any) -> float | None:
    """Writes the attempt and the delivery's new state. Returns the seconds until the next
    attempt, or None when there is none."""
    delivery.attempt_count += 1
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=delivery.attempt_count,
        attempted_at=started,
        status_code=result.status_code,
        error=result.error,
        duration_ms=result.duration_ms,
        response_snippet=result.snippet[: WebhookAttempt.SNIPPET_LENGTH],
    )
    delivery.first_attempt_at = delivery.first_attempt_at or started
    delivery.last_attempt_at = started
    delivery.last_status_code = result.status_code
    delivery.last_error = result.error
    delay: float | None = None
    if result.succeeded:
        delivery.status = Status.SUCCEEDED
        delivery.next_attempt_at = None
    else:
        now = timezone.now()
        deadline = delivery.first_attempt_at + timedelta(
            seconds=settings.HUB_WEBHOOKS_RETRY_WINDOW_SECONDS
        )
        if result.refused or now >= deadline:
            # The dead letter: kept, visible in the admin, requeueable from there.
            delivery.status = Status.DEAD
            delivery.next_attempt_at = None
        else:
            if result.retry_after is not None:
                wanted = max(1.0, result.retry_after)
            else:
                wanted = webhook_retry_delay(failures=delivery.attempt_count)
            # The last attempt falls on the deadline at the latest, never after it.
            delivery.next_attempt_at = min(now + timedelta(seconds=wanted), deadline)
            delivery.status = Status.FAILED
            delay = (delivery.next_attempt_at - now).total_seconds()
    delivery.save(
        update_fields=[
            "attempt_count",
            "first_attempt_at",
            "last_attempt_at",
            "last_status_code",
            "last_error",
            "status",
            "next_attempt_at",
            "updated_at",
        ]
    )
    return delay


def webhook_delivery_attempt(*, delivery_id: uuid.UUID | str) -> WebhookDelivery | None:
    """Makes one attempt at a due delivery and records it.

    Idempotent: a delivery that succeeded, is dead, is not due yet, or is being attempted by
    another worker right now (its row is locked) is left alone, so a redelivered or duplicate
    task sends nothing twice. The row stays locked during the POST (bounded by the timeout).

    After a failure the next attempt is scheduled with backoff and full jitter, or after the
    receiver's `Retry-After` (429, 503), until the retry window counted from the first attempt
    closes; a failure after that, or a refused destination (SSRF rules, checked again because
    DNS may have changed), makes the delivery dead.
    """
    schema = tenant_connection().schema_name
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("subscription")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None:
            return None
        started = timezone.now()
        if delivery.status not in RETRYABLE:
            return delivery
        if delivery.next_attempt_at and delivery.next_attempt_at > started + DUE_SLACK:
            return delivery
        subscription = delivery.subscription
        if not subscription.enabled:
            delivery.status = Status.DEAD
            delivery.next_attempt_at = None
            delivery.last_error = "The webhook is disabled."
            delivery.save(update_fields=["status", "next_attempt_at", "last_error", "updated_at"])
            return delivery
        body = webhook_body(delivery=delivery, tenant_slug=schema)
        result = webhook_post(
            url=subscription.url,
            body=body,
            headers=webhook_headers(delivery=delivery, secret=subscription.secret, body=body),
            timeout=float(settings.HUB_WEBHOOKS_TIMEOUT_SECONDS),
        )
        delay = _record_attempt(delivery, result, started=started)
        log = {
            "delivery_id": str(delivery.pk),
            "event": delivery.event,
            "attempt": delivery.attempt_count,
            "status_code": result.status_code,
            "delivery_status": delivery.status,
        }
        if result.succeeded:
            logger.info("webhook delivered", extra=log)
        else:
            logger.warning("webhook attempt failed", extra={**log, "error": result.error})
        if delay is not None and delay <= COUNTDOWN_LIMIT_SECONDS:
            _enqueue_after_commit(delivery_ids=[str(delivery.pk)], countdown=delay)
    return delivery


@transaction.atomic
def webhook_delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Sends a delivery again now, whatever its status, with a fresh retry window. The
    receiver sees the same delivery id, so it can tell a redelivery from a new event.

    Raises WebhookDisabled (409) when the subscription is disabled. Waits for an attempt in
    flight to finish rather than racing it.
    """
    locked = (
        WebhookDelivery.objects.select_for_update(of=("self",))
        .select_related("subscription")
        .get(pk=delivery.pk)
    )
    if not locked.subscription.enabled:
        raise WebhookDisabled()
    locked.status = Status.PENDING
    locked.next_attempt_at = timezone.now()
    locked.first_attempt_at = None
    locked.save(update_fields=["status", "next_attempt_at", "first_attempt_at", "updated_at"])
    _enqueue_after_commit(delivery_ids=[str(locked.pk)])
    return locked


@transaction.atomic
def webhook_deliveries_requeue_dead(*, delivery_ids: Iterable[uuid.UUID | str]) -> int:
    """Puts the dead deliveries among `delivery_ids` back in the queue, each with a fresh
    retry window. Others, and those of disabled subscriptions, are left as they are."""
    ids = list(
        WebhookDelivery.objects.select_for_update(of=("self",))
        .filter(pk__in=list(delivery_ids), status=Status.DEAD, subscription__enabled=True)
        .values_list("pk", flat=True)
    )
    now = timezone.now()
    WebhookDelivery.objects.filter(pk__in=ids).update(
        status=Status.PENDING, next_attempt_at=now, first_attempt_at=None, updated_at=now
    )
    _enqueue_after_commit(delivery_ids=[str(pk) for pk in ids])
    return len(ids)


def webhook_deliveries_enqueue_due() -> dict[str, int]:
    """The sweeper (a per-tenant job, every minute): enqueues deliveries overdue by more than
    SWEEP_GRACE, those whose task was lost or whose retry was too far off for a countdown."""
    schema = tenant_connection().schema_name
    due = list(
        webhook_deliveries_overdue()
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    client = get_redis()
    fresh = [
        str(pk)
        for pk in due
        if client.set(f"hub:webhooks:swept:{schema}:{pk}", 1, nx=True, ex=SWEEP_DEDUPE_SECONDS)
    ]
    _enqueue_after_commit(delivery_ids=fresh)
    return {"due": len(due), "enqueued": len(fresh)}
