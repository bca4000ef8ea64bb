"""Outgoing webhook payloads of a tenant that encrypts message bodies: ciphertext in the
delivery row, plaintext JSON (signed as usual) at the receiver; another tenant's stay plain."""

from __future__ import annotations

import hashlib
import hmac
import json

from django.db import connection

from conversations.services.messages import message_receive
from retention.encryption import TOKEN
from tests.factories import ConversationFactory
from tests.webhooks.conftest import Receiver
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_delivery_attempt, webhook_subscription_create

SECRET = "whsec_test-secret-0123456789"
BODY = "my card number is 4111 1111 1111 1111"


def _raw_payload(delivery_id) -> object:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT payload::text FROM webhooks_webhookdelivery WHERE id = %s", [delivery_id]
        )
        return json.loads(cursor.fetchone()[0])


def _deliver_a_message(info, receiver: Receiver, capture) -> WebhookDelivery:
    """A customer's message in `info`'s tenant, delivered to the receiver once."""
    with info.schema():
        subscription = webhook_subscription_create(
            url=f"{receiver.base_url}/{info.slug}", events=["message.created"], secret=SECRET
        )
        conversation = ConversationFactory.create()
        with capture(execute=True):
            message_receive(
                conversation=conversation,
                contact=conversation.contact,
                content={"type": "text", "text": BODY},
            )
        [delivery] = subscription.deliveries.all()
        webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        return delivery


def test_the_row_is_ciphertext_and_the_receiver_gets_plaintext(
    tenant_a, tenant_b, receiver: Receiver, django_capture_on_commit_callbacks
) -> None:
    tenant = tenant_a.tenant
    tenant.message_encryption = True
    tenant.save()
    encrypted = _deliver_a_message(tenant_a, receiver, django_capture_on_commit_callbacks)
    plain = _deliver_a_message(tenant_b, receiver, django_capture_on_commit_callbacks)

    with tenant_a.schema():
        stored = _raw_payload(encrypted.pk)
        assert isinstance(stored, dict)
        assert set(stored) == {"$enc"}
        assert TOKEN.match(stored["$enc"])
        assert "4111" not in json.dumps(stored)
        assert encrypted.status == "succeeded"
        assert encrypted.payload["content"] == {"type": "text", "text": BODY}
    with tenant_b.schema():
        assert _raw_payload(plain.pk)["content"] == {"type": "text", "text": BODY}  # type: ignore[index]

    requests = {request.path: request for request in receiver.requests}
    assert set(requests) == {f"/{tenant_a.slug}", f"/{tenant_b.slug}"}
    for request in requests.values():
        expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(request.headers["X-Hub-Signature-256"], expected)
        assert json.loads(request.body)["data"]["content"] == {"type": "text", "text": BODY}
