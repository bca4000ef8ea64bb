"""Which events a tenant subscribes to, remembered per process (hub/memo.py) without a query or
a Redis read per event: a change through the services shows at once, one made by another
process once the memo's counter moves, and one tenant's subscriptions never count for another."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from hub import memo
from hub.redis import get_redis
from tests.support import MemoClock
from webhooks.models import WebhookDelivery, WebhookSubscription
from webhooks.services import webhook_event_subscribed as subscribed
from webhooks.services import (
    webhook_event_subscriber,
    webhook_subscription_create,
    webhook_subscription_delete,
    webhook_subscription_update,
)

URL = "http://127.0.0.1:9/hook"

pytestmark = pytest.mark.usefixtures("memo_clock")


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


def test_the_answer_is_kept_until_the_counter_moves(tenant_a, memo_clock: MemoClock) -> None:
    with tenant_a.schema():
        assert not subscribed(event="message.created")
        # Another process subscribes: its row, which this process cannot see being written.
        WebhookSubscription.objects.create(url=URL, events=["message.created"], secret="s" * 32)
        memo_clock.now += 30
        with CaptureQueriesContext(connection) as queries:
            assert not subscribed(event="message.created")
        assert len(queries) == 0
        # Its commit bumps the counter: within a second the next event asks the database.
        get_redis().incr(memo.GENERATION_KEY)
        memo_clock.now += memo.CHECK_SECONDS
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
