"""Reads on webhook subscriptions and deliveries, in the current tenant's schema."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone

from hub.db import prepared_exists
from hub.exceptions import NotFoundError
from webhooks.models import WebhookDelivery, WebhookSubscription

RETRYABLE = (WebhookDelivery.Status.PENDING, WebhookDelivery.Status.FAILED)
# The sweeper leaves a delivery alone this long after it is due, so its countdown task runs
# first; past that, the task was lost (Redis down when the event fired, a worker killed).
SWEEP_GRACE = timedelta(seconds=60)


def webhook_subscription_list() -> QuerySet[WebhookSubscription]:
    return WebhookSubscription.objects.all()


def webhook_subscription_get(*, subscription_id: uuid.UUID | str) -> WebhookSubscription:
    """The subscription in the current tenant's schema; another tenant's id is simply not
    found, with the same answer as an id that never existed."""
    subscription = WebhookSubscription.objects.filter(pk=subscription_id).first()
    if subscription is None:
        raise NotFoundError("No such webhook.")
    return subscription


def webhook_delivery_list(*, subscription: WebhookSubscription) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(subscription=subscription)


def webhook_delivery_get(
    *, subscription: WebhookSubscription, delivery_id: uuid.UUID | str
) -> WebhookDelivery:
    delivery = WebhookDelivery.objects.filter(subscription=subscription, pk=delivery_id).first()
    if delivery is None:
        raise NotFoundError("No such delivery.")
    return delivery


def webhook_deliveries_overdue(*, now: datetime | None = None) -> QuerySet[WebhookDelivery]:
    """Deliveries due for longer than SWEEP_GRACE: their task was lost, or their retry was too
    far off for a countdown (the sweeper's work, webhooks/jobs.py)."""
    return _deliveries_due_before((now or timezone.now()) - SWEEP_GRACE)


def _deliveries_due_before(due_before: datetime) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(status__in=RETRYABLE, next_attempt_at__lte=due_before)


_ANY_OVERDUE = prepared_exists(_deliveries_due_before, due_before=datetime)


def webhook_deliveries_overdue_exist() -> bool:
    """The sweeper's check, in every tenant every minute (hub.db.prepared_exists)."""
    return _ANY_OVERDUE(due_before=timezone.now() - SWEEP_GRACE)
