"""End to end: a message committed in tenant A reaches A's receiver through a real Celery worker,
failing once and succeeding on the retry."""

from __future__ import annotations

import hashlib
import hmac
import json

from django_tenants.utils import schema_context

from conversations.models import Contact, Message, Participant
from conversations.services.messages import message_receive
from tests import support
from tests.factories import ConversationFactory
from tests.webhooks.conftest import Receiver
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_subscription_create, webhook_subscription_delete

SECRET = "whsec_worker-secret-0123456789"


def test_a_real_worker_delivers_and_retries(
    committed_db, fast_retry_worker: support.Process, receiver: Receiver
) -> None:
    a, b = committed_db["a"].slug, committed_db["b"].slug
    receiver.respond(500, 200)
    with schema_context(a):
        subscription = webhook_subscription_create(
            url=receiver.url, events=["message.created"], secret=SECRET
        )
        conversation = ConversationFactory.create()
    with schema_context(b):
        other = webhook_subscription_create(
            url=f"{receiver.base_url}/tenant-b", events=["message.created"], secret=SECRET
        )
    try:
        with schema_context(a):
            message, _ = message_receive(
                conversation=conversation,
                contact=conversation.contact,
                content={"type": "text", "text": "through the worker"},
            )

        def succeeded() -> WebhookDelivery | None:
            with schema_context(a):
                return WebhookDelivery.objects.filter(
                    subscription=subscription, status="succeeded"
                ).first()

        delivery = support.wait_until(succeeded, timeout=60, what="the delivery to succeed")
        with schema_context(a):
            codes = list(delivery.attempts.values_list("status_code", flat=True))
        assert delivery.attempt_count == 2
        assert codes == [500, 200]
        assert [r.path for r in receiver.requests] == ["/hook", "/hook"]
        for request in receiver.requests:
            expected = (
                "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
            )
            assert request.headers["X-Hub-Signature-256"] == expected
        envelope = json.loads(receiver.requests[-1].body)
        assert envelope["tenant"] == a
        assert envelope["data"]["id"] == str(message.pk)
        with schema_context(b):
            assert not WebhookDelivery.objects.filter(subscription=other).exists()
        delivered = [
            line for line in fast_retry_worker.log().splitlines() if '"webhook delivered"' in line
        ]
        assert delivered
    finally:
        with schema_context(a):
            webhook_subscription_delete(subscription=subscription)
            Message.objects.filter(conversation=conversation).delete()
            Participant.objects.filter(conversation=conversation).delete()
            conversation.delete()
            Contact.objects.filter(pk=conversation.contact_id).delete()
            conversation.channel.delete()
        with schema_context(b):
            webhook_subscription_delete(subscription=other)
