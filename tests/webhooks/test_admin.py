"""The tenant admin shows deliveries with every attempt, never a secret, and requeues from the
dead letter."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.webhooks.conftest import Receiver
from webhooks.models import WebhookDelivery, WebhookSubscription
from webhooks.services import (
    webhook_delivery_attempt,
    webhook_event_dispatch,
    webhook_subscription_create,
)

SECRET = "whsec_admin-secret-0123456789"


@pytest.fixture
def admin_client(tenant_a) -> Client:
    with tenant_a.schema():
        get_user_model().objects.create_superuser(username="ops", password="pw-ops-123456")
    client = Client()
    response = client.post(
        f"/t/{tenant_a.slug}/admin/login/", {"username": "ops", "password": "pw-ops-123456"}
    )
    assert response.status_code == 302
    return client


def test_deliveries_and_their_attempts_are_visible(
    tenant_a, admin_client: Client, receiver: Receiver
) -> None:
    receiver.respond(500)
    with tenant_a.schema():
        subscription = webhook_subscription_create(
            url=receiver.url, events=["message.created"], secret=SECRET
        )
        [delivery] = webhook_event_dispatch(event="message.created", payload={"id": "m-42"})
        webhook_delivery_attempt(delivery_id=delivery.pk)
    base = f"/t/{tenant_a.slug}/admin/webhooks"

    listing = admin_client.get(f"{base}/webhookdelivery/?status__exact=failed")
    assert listing.status_code == 200
    assert b"message.created" in listing.content
    assert admin_client.get(f"{base}/webhookdelivery/?event=contact.created").status_code == 200

    detail = admin_client.get(f"{base}/webhookdelivery/{delivery.pk}/change/")
    assert detail.status_code == 200
    assert b"HTTP 500." in detail.content
    assert b"answer 500" in detail.content
    assert b"m-42" in detail.content

    for page in (
        f"{base}/webhooksubscription/",
        f"{base}/webhooksubscription/{subscription.pk}/change/",
    ):
        response = admin_client.get(page)
        assert response.status_code == 200
        assert SECRET.encode() not in response.content


def test_requeue_dead_and_redeliver_now_actions(tenant_a, admin_client: Client) -> None:
    with tenant_a.schema():
        webhook_subscription_create(
            url="http://127.0.0.1:9/hook", events=["message.created"], secret=SECRET
        )
        [dead] = webhook_event_dispatch(event="message.created", payload={"id": "m-1"})
        [succeeded] = webhook_event_dispatch(event="message.created", payload={"id": "m-2"})
        WebhookDelivery.objects.filter(pk=dead.pk).update(status="dead")
        WebhookDelivery.objects.filter(pk=succeeded.pk).update(status="succeeded")
    url = f"/t/{tenant_a.slug}/admin/webhooks/webhookdelivery/"

    response = admin_client.post(
        url, {"action": "requeue_dead", "_selected_action": [str(dead.pk), str(succeeded.pk)]}
    )
    assert response.status_code == 302
    with tenant_a.schema():
        assert WebhookDelivery.objects.get(pk=dead.pk).status == "pending"
        assert WebhookDelivery.objects.get(pk=succeeded.pk).status == "succeeded"

    response = admin_client.post(
        url, {"action": "redeliver_now", "_selected_action": [str(succeeded.pk)]}
    )
    assert response.status_code == 302
    with tenant_a.schema():
        assert WebhookDelivery.objects.get(pk=succeeded.pk).status == "pending"


def test_a_subscription_added_in_the_admin_keeps_the_secret_it_was_given(
    tenant_a, admin_client: Client, settings
) -> None:
    url = f"/t/{tenant_a.slug}/admin/webhooks/webhooksubscription/add/"
    form = {
        "url": "http://127.0.0.1:9/hook",
        "events": ["message.created", "contact.created"],
        "enabled": "on",
        "description": "from the admin",
        "new_secret": "typed-by-an-operator-123",
    }
    assert admin_client.post(url, form).status_code == 302
    with tenant_a.schema():
        subscription = WebhookSubscription.objects.get()
        assert subscription.secret == "typed-by-an-operator-123"
        assert subscription.events == ["message.created", "contact.created"]

    settings.HUB_WEBHOOKS_ALLOW_LOOPBACK = False
    refused = admin_client.post(url, {**form, "url": "http://127.0.0.1:10/hook"})
    assert refused.status_code == 200
    assert b"loopback" in refused.content
    with tenant_a.schema():
        assert WebhookSubscription.objects.count() == 1
