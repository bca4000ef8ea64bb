"""Reads on webhook subscriptions and deliveries, in the current tenant's schema."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from hub.exceptions import NotFoundError
from webhooks.models import WebhookDelivery, WebhookSubscription


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
