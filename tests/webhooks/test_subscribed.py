"""Which events a tenant subscribes to, known per process without a query per event: a change
through the services shows at once, one made by another process once its version is bumped, and
one tenant's subscriptions never count for another."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hub.redis import get_redis
from webhooks import services
from webhooks.models import WebhookDelivery, WebhookSubscription
from webhooks.services import (
    _subscribed_version_key,
    webhook_event_subscriber,
    webhook_subscription_create,
    webhook_subscription_delete,
    webhook_subscription_update,
)
from webhooks.services import webhook_event_subscribed as subscribed

URL = "http://127.0.0.1:9/hook"


@pytest.fixture(autouse=True)
def _nothing_known() -> Iterator[None]:
    """The process's answers outlive a test's rolled-back rows: each test starts without any."""
    services._subscribed.clear()
    yield
    services._subscribed.clear()


def test_a_change_through_the_services_shows_at_once(tenant_a) -> None:
    with tenant_a.schema():
        assert not subscribed(event="message.created")
        subscription = webhook_subscription_create(url=URL, events=["message.created"])
        assert subscribed(event="message.created")
        assert not subscribed(event="message.updated")
        webhook_subscription_update(subscription=subscription, enabled=False)
        assert not subscribed(event="message.created")
        webhook_subscription_update(subscription=subscription, enabled=True)
        webhook_subscription_delete(subscription=subscription)
        assert not subscribed(event="message.created")


def test_the_answer_is_kept_until_the_version_moves(tenant_a) -> None:
    with tenant_a.schema():
        assert not subscribed(event="message.created")
        # Another process subscribes: its row, which this process cannot see being written.
        WebhookSubscription.objects.create(url=URL, events=["message.created"], secret="s" * 32)
        with CaptureQueriesContext(connection) as queries:
            assert not subscribed(event="message.created")
        assert len(queries) == 0
        # Its commit bumps the version: the next event asks the database again.
        get_redis().incr(_subscribed_version_key(tenant_a.slug))
        assert subscribed(event="message.created")


def test_one_tenants_subscriptions_never_count_for_another(tenant_a, tenant_b) -> None:
    with tenant_a.schema():
        webhook_subscription_create(url=URL, events=["message.created"])
        assert subscribed(event="message.created")
    with tenant_b.schema():
        assert not subscribed(event="message.created")
        # A tenant without subscriptions: the event costs no query at all.
        with CaptureQueriesContext(connection) as queries:
            webhook_event_subscriber(tenant_b.slug, "message.created", {"id": "m-1"})
        assert len(queries) == 0
        assert not WebhookDelivery.objects.exists()
    with tenant_a.schema():
        webhook_event_subscriber(tenant_a.slug, "message.created", {"id": "m-1"})
        assert WebhookDelivery.objects.filter(event="message.created").count() == 1
