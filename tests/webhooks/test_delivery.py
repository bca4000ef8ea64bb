"""Delivering outgoing webhooks to a real HTTP receiver on 127.0.0.1: the envelope and its
signature, retries with backoff and `Retry-After`, the 24 h window and the dead letter, the
SSRF rules at delivery time, and which subscriptions get which events."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from django.db import connection, connections
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.services.conversations import conversation_open
from conversations.services.messages import message_receive
from tenants.connection import tenant_connection
from tests import support
from tests.factories import ChannelFactory, ContactFactory, ConversationFactory
from tests.webhooks.conftest import Receiver
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from webhooks.services import (
    webhook_deliveries_requeue_dead,
    webhook_delivery_attempt,
    webhook_delivery_redeliver,
    webhook_event_dispatch,
    webhook_subscription_create,
    webhook_subscription_delete,
    webhook_subscription_update,
)

SECRET = "whsec_test-secret-0123456789"
TEXT = {"type": "text", "text": "hello"}


def _signature(secret: str, body: bytes) -> str:
    """What an integrator computes: the documented recipe, not the hub's own helper."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _subscribe(url: str, events: list[str] | None = None, **kwargs: Any) -> WebhookSubscription:
    return webhook_subscription_create(
        url=url, events=events or ["message.created"], secret=SECRET, **kwargs
    )


def _one_delivery(subscription: WebhookSubscription) -> WebhookDelivery:
    webhook_event_dispatch(event="message.created", payload={"id": "m-1", "seq": 1})
    return WebhookDelivery.objects.get(subscription=subscription)


def _make_due(delivery: WebhookDelivery) -> None:
    """Moves the next attempt to now instead of sleeping until it."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def _statuses(delivery: WebhookDelivery) -> list[int | None]:
    return [attempt.status_code for attempt in delivery.attempts.order_by("number")]


def test_message_created_envelope_is_signed_with_the_secret(
    tenant_a, receiver: Receiver, django_capture_on_commit_callbacks
) -> None:
    with tenant_a.schema():
        subscription = _subscribe(receiver.url)
        conversation = ConversationFactory.create()
        with django_capture_on_commit_callbacks(execute=True):
            message, _ = message_receive(
                conversation=conversation, contact=conversation.contact, content=TEXT
            )
        delivery = WebhookDelivery.objects.get(subscription=subscription)
        assert (delivery.event, delivery.status) == ("message.created", "pending")
        webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        [attempt] = delivery.attempts.all()

    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hook"
    assert hmac.compare_digest(
        request.headers["X-Hub-Signature-256"], _signature(SECRET, request.body)
    )
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Hub-Event"] == "message.created"
    assert request.headers["X-Hub-Delivery"] == str(delivery.pk)
    assert request.headers["User-Agent"] == "Hub-Webhooks/1"

    envelope = json.loads(request.body)
    assert set(envelope) == {"id", "event", "created_at", "tenant", "data"}
    assert envelope["id"] == str(delivery.pk)
    assert envelope["event"] == "message.created"
    assert envelope["tenant"] == tenant_a.slug
    assert datetime.fromisoformat(envelope["created_at"].replace("Z", "+00:00"))
    data = envelope["data"]
    assert data["id"] == str(message.pk)
    assert data["conversation"] == str(conversation.pk)
    assert data["direction"] == "in"
    assert data["sender_type"] == "contact"
    assert data["seq"] == 1
    assert data["content"] == TEXT
    assert data["status"] == "received"

    assert delivery.status == "succeeded"
    assert delivery.attempt_count == 1
    assert delivery.last_status_code == 200
    assert delivery.first_attempt_at is not None
    assert attempt.status_code == 200
    assert attempt.response_snippet == "answer 200"


def test_a_wrong_secret_does_not_verify(tenant_a, receiver: Receiver) -> None:
    with tenant_a.schema():
        delivery = _one_delivery(_subscribe(receiver.url))
        webhook_delivery_attempt(delivery_id=delivery.pk)
    [request] = receiver.requests
    assert request.headers["X-Hub-Signature-256"] != _signature("another-secret-123", request.body)
    assert request.headers["X-Hub-Signature-256"] != _signature(SECRET, request.body + b" ")


def test_500_then_200_succeeds_on_the_second_attempt(
    tenant_a, receiver: Receiver, settings
) -> None:
    receiver.respond(500, 200)
    with tenant_a.schema():
        delivery = _one_delivery(_subscribe(receiver.url))
        before = timezone.now()
        webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert delivery.status == "failed"
        assert delivery.last_status_code == 500
        assert delivery.last_error == "HTTP 500."
        # Full jitter: somewhere between a second and the base after the first failure.
        assert delivery.next_attempt_at is not None
        wait = (delivery.next_attempt_at - before).total_seconds()
        assert 0.9 <= wait <= settings.HUB_WEBHOOKS_RETRY_BASE_SECONDS + 2

        # Not due yet: a duplicate task sends nothing.
        webhook_delivery_attempt(delivery_id=delivery.pk)
        assert len(receiver.requests) == 1

        _make_due(delivery)
        webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert delivery.status == "succeeded"
        assert delivery.attempt_count == 2
        assert delivery.next_attempt_at is None
        assert _statuses(delivery) == [500, 200]

        # Succeeded: a redelivered task does nothing.
        webhook_delivery_attempt(delivery_id=delivery.pk)
    assert len(receiver.requests) == 2
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["X-Hub-Delivery"] == second.headers["X-Hub-Delivery"]
    assert second.headers["X-Hub-Signature-256"] == _signature(SECRET, second.body)


def test_backoff_grows_and_is_capped(settings) -> None:
    from webhooks.services import webhook_retry_delay

    settings.HUB_WEBHOOKS_RETRY_BASE_SECONDS = 10
    settings.HUB_WEBHOOKS_RETRY_MAX_INTERVAL_SECONDS = 3600
    assert all(1 <= webhook_retry_delay(failures=1) <= 10 for _ in range(50))
    assert all(1 <= webhook_retry_delay(failures=4) <= 80 for _ in range(50))
    assert all(webhook_retry_delay(failures=30) <= 3600 for _ in range(50))
    assert max(webhook_retry_delay(failures=30) for _ in range(200)) > 600


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, "120", 120),
        (503, "300", 300),
        (429, "date:600", 600),
    ],
)
def test_retry_after_is_honoured(
    tenant_a, receiver: Receiver, status: int, retry_after: str, expected: int
) -> None:
    if retry_after.startswith("date:"):
        when = timezone.now() + timedelta(seconds=int(retry_after.removeprefix("date:")))
        retry_after = format_datetime(when, usegmt=True)
    receiver.respond((status, {"Retry-After": retry_after}))
    with tenant_a.schema():
        delivery = _one_delivery(_subscribe(receiver.url))
        webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.last_status_code == status
    assert delivery.next_attempt_at is not None
    wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert expected - 5 <= wait <= expected + 1


def test_retry_after_beyond_the_window_is_cut_to_its_end(tenant_a, receiver: Receiver) -> None:
    receiver.respond((429, {"Retry-After": "7200"}))
    with tenant_a.schema():
        delivery = _one_delivery(_subscribe(receiver.url))
        first = timezone.now() - timedelta(hours=23, minutes=30)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status="failed", first_attempt_at=first, attempt_count=20
        )
        webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.next_attempt_at == first + timedelta(hours=24)


def test_dead_after_the_24h_window_then_requeued(tenant_a, receiver: Receiver) -> None:
    receiver.respond(500)
    with tenant_a.schema():
        delivery = _one_delivery(_subscribe(receiver.url))
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status="failed",
            attempt_count=40,
            first_attempt_at=timezone.now() - timedelta(hours=24, seconds=1),
            next_attempt_at=timezone.now(),
        )
        webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert delivery.status == "dead"
        assert delivery.next_attempt_at is None
        assert delivery.attempt_count == 41
        assert delivery.attempts.get(number=41).status_code == 500

        # Dead: nothing more is sent.
        webhook_delivery_attempt(delivery_id=delivery.pk)
        assert len(receiver.requests) == 1

        # Requeued from the dead letter: a fresh window, and it goes out.
        assert webhook_deliveries_requeue_dead(delivery_ids=[delivery.pk]) == 1
        delivery.refresh_from_db()
        assert (delivery.status, delivery.first_attempt_at) == ("pending", None)
        webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
    assert delivery.status == "succeeded"
    assert len(receiver.requests) == 2


def test_redeliver_sends_a_succeeded_delivery_again(tenant_a, receiver: Receiver) -> None:
    with tenant_a.schema():
        delivery = _one_delivery(_subscribe(receiver.url))
        webhook_delivery_attempt(delivery_id=delivery.pk)
        webhook_delivery_redeliver(delivery=delivery)
        webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
    assert delivery.status == "succeeded"
    assert delivery.attempt_count == 2
    assert [r.headers["X-Hub-Delivery"] for r in receiver.requests] == [str(delivery.pk)] * 2


def test_redirects_are_not_followed(tenant_a, receiver: Receiver) -> None:
    receiver.respond((302, {"Location": f"{receiver.base_url}/elsewhere"}))
    with tenant_a.schema():
        delivery = _one_delivery(_subscribe(receiver.url))
        webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
    assert [r.path for r in receiver.requests] == ["/hook"]
    assert delivery.status == "failed"
    assert delivery.last_status_code == 302
    assert "redirects are not followed" in delivery.last_error


def test_an_unreachable_receiver_is_retried(tenant_a, receiver: Receiver) -> None:
    from hub.embedded import free_port

    with tenant_a.schema():
        delivery = _one_delivery(_subscribe(f"http://127.0.0.1:{free_port()}/hook"))
        webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        [attempt] = delivery.attempts.all()
    assert delivery.status == "failed"
    assert delivery.last_status_code is None
    assert "ConnectionError" in delivery.last_error
    assert attempt.error == delivery.last_error


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_destination_refused_at_delivery_time_is_dead_at_once(
    tenant_a, receiver: Receiver, settings, host: str
) -> None:
    """The URL was fine when saved; by the time of delivery the rules (or DNS) say otherwise."""
    with tenant_a.schema():
        delivery = _one_delivery(_subscribe(f"http://{host}:{receiver.port}/hook"))
        settings.HUB_WEBHOOKS_ALLOW_LOOPBACK = False
        webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        [attempt] = delivery.attempts.all()
    assert receiver.requests == []
    assert delivery.status == "dead"
    assert "loopback" in delivery.last_error
    assert attempt.status_code is None


def test_events_are_filtered_by_each_subscription(
    tenant_a, receiver: Receiver, django_capture_on_commit_callbacks
) -> None:
    with tenant_a.schema():
        messages_only = _subscribe(receiver.url, ["message.created"])
        conversations_only = _subscribe(receiver.url, ["conversation.created"])
        both = _subscribe(receiver.url, ["conversation.created", "message.created"])
        with django_capture_on_commit_callbacks(execute=True):
            conversation, _ = conversation_open(
                channel=ChannelFactory.create(), contact=ContactFactory.create()
            )
            message_receive(conversation=conversation, contact=conversation.contact, content=TEXT)

        def events(subscription: WebhookSubscription) -> list[str]:
            return sorted(subscription.deliveries.values_list("event", flat=True))

        assert events(messages_only) == ["message.created"]
        assert events(conversations_only) == ["conversation.created"]
        assert events(both) == ["conversation.created", "message.created"]


def test_disabled_subscriptions_get_nothing(
    tenant_a, receiver: Receiver, django_capture_on_commit_callbacks
) -> None:
    with tenant_a.schema():
        disabled = _subscribe(receiver.url, enabled=False)
        conversation = ConversationFactory.create()
        with django_capture_on_commit_callbacks(execute=True):
            message_receive(conversation=conversation, contact=conversation.contact, content=TEXT)
        assert not disabled.deliveries.exists()

        # Disabled while a delivery waits for its retry: it is not sent, and lands in the
        # dead letter to be requeued once the webhook is enabled again.
        enabled = _subscribe(receiver.url)
        delivery = _one_delivery(enabled)
        webhook_subscription_update(subscription=enabled, enabled=False)
        webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
    assert receiver.requests == []
    assert delivery.status == "dead"
    assert delivery.last_error == "The webhook is disabled."


def test_a_tenants_events_never_reach_another_tenants_subscribers(
    tenant_a, tenant_b, receiver: Receiver, django_capture_on_commit_callbacks
) -> None:
    with tenant_b.schema():
        b_subscription = _subscribe(f"{receiver.base_url}/tenant-b")
    with tenant_a.schema():
        a_subscription = _subscribe(f"{receiver.base_url}/tenant-a")
        conversation = ConversationFactory.create()
        with django_capture_on_commit_callbacks(execute=True):
            message_receive(conversation=conversation, contact=conversation.contact, content=TEXT)
        [delivery] = a_subscription.deliveries.all()
        webhook_delivery_attempt(delivery_id=delivery.pk)
    with tenant_b.schema():
        assert not WebhookDelivery.objects.exists()
        assert not b_subscription.deliveries.exists()
        # B's worker cannot even find A's delivery by id.
        assert webhook_delivery_attempt(delivery_id=delivery.pk) is None
    assert [r.path for r in receiver.requests] == ["/tenant-a"]
    assert json.loads(receiver.requests[0].body)["tenant"] == tenant_a.slug


def test_the_sweeper_enqueues_overdue_deliveries_once(tenant_a, receiver: Receiver) -> None:
    from webhooks.services import webhook_deliveries_enqueue_due

    with tenant_a.schema():
        subscription = _subscribe(receiver.url)
        overdue = _one_delivery(subscription)
        [recent] = webhook_event_dispatch(event="message.created", payload={"id": "m-2"})
        [later] = webhook_event_dispatch(event="message.created", payload={"id": "m-3"})
        [done] = webhook_event_dispatch(event="message.created", payload={"id": "m-4"})
        now = timezone.now()
        WebhookDelivery.objects.filter(pk=overdue.pk).update(
            status="failed", next_attempt_at=now - timedelta(minutes=5)
        )
        WebhookDelivery.objects.filter(pk=later.pk).update(
            status="failed", next_attempt_at=now + timedelta(minutes=30)
        )
        WebhookDelivery.objects.filter(pk=done.pk).update(
            status="succeeded", next_attempt_at=now - timedelta(minutes=5)
        )
        # `recent` is due now: its own task is on the way, so the sweeper leaves it alone.
        assert recent.next_attempt_at is not None
        assert webhook_deliveries_enqueue_due() == {"due": 1, "enqueued": 1}
        # Swept again a minute later, while the worker is still behind: not enqueued twice.
        assert webhook_deliveries_enqueue_due() == {"due": 1, "enqueued": 0}


def test_the_secret_is_encrypted_at_rest_and_follows_key_rotation(tenant_a, settings) -> None:
    from cryptography.fernet import Fernet
    from django.db import connection

    from hub.fields import encrypted_fields_rotate

    def raw(pk: Any) -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT secret FROM webhooks_webhooksubscription WHERE id = %s", [pk])
            return cursor.fetchone()[0]

    old_key = settings.HUB_FIELD_KEYS[0]
    with tenant_a.schema():
        subscription = _subscribe("http://127.0.0.1:9/hook")
        before = raw(subscription.pk)
        assert SECRET not in before
        new_key = Fernet.generate_key().decode()
        settings.HUB_FIELD_KEYS = [new_key, old_key]
        assert encrypted_fields_rotate(WebhookSubscription) == 1
        assert raw(subscription.pk) != before
        settings.HUB_FIELD_KEYS = [new_key]
        assert WebhookSubscription.objects.get(pk=subscription.pk).secret == SECRET


def test_deleting_a_subscription_waits_for_an_attempt_in_flight(
    committed_db, receiver: Receiver
) -> None:
    """A worker posting one of the subscription's deliveries holds its row; the delete waits
    for it and removes the attempt it records, instead of failing on the attempt's key."""
    slug = committed_db["a"].slug
    with schema_context(slug):
        subscription = _subscribe(receiver.url)
        delivery = _one_delivery(subscription)
    errors: list[BaseException] = []

    def in_thread(work: Callable[[], object]) -> threading.Thread:
        def run() -> None:
            try:
                with schema_context(slug):
                    work()
            except BaseException as error:
                errors.append(error)
            finally:
                connections.close_all()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def waiting_on_a_lock() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return cursor.fetchone()[0] > 0

    receiver.answering.clear()
    try:
        attempt = in_thread(lambda: webhook_delivery_attempt(delivery_id=delivery.pk))
        support.wait_until(lambda: receiver.requests, timeout=10, what="the attempt's POST")
        delete = in_thread(lambda: webhook_subscription_delete(subscription=subscription))
        support.wait_until(waiting_on_a_lock, timeout=10, what="the delete to wait")
    finally:
        receiver.answering.set()
    attempt.join(30)
    delete.join(30)
    try:
        assert errors == []
        with schema_context(slug):
            assert not WebhookSubscription.objects.filter(pk=subscription.pk).exists()
            assert not WebhookAttempt.objects.filter(delivery_id=delivery.pk).exists()
    finally:
        with schema_context(slug):
            WebhookSubscription.objects.all().delete()
        tenant_connection().set_schema_to_public()
