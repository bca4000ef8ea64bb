"""The durable inbox under faults: Redis down at receipt, a real server and a real worker."""

from __future__ import annotations

from datetime import timedelta

import requests
from django.utils import timezone
from django_tenants.utils import schema_context

from channels_app.inbound import inbound_events_sweep
from channels_app.models import Channel, ChannelKind, InboundEvent
from conversations.models import Contact, Conversation, Message, Participant
from tests import support
from tests.channels.helpers import fixture_bytes, meta_signature

CONFIG = {
    "phone_number_id": "100000000000002",
    "access_token": "t",
    "app_secret": "s",
    "verify_token": "v",
}


def _cleanup(slug: str) -> None:
    with schema_context(slug):
        Conversation.objects.update(last_message=None)
        Message.objects.all().delete()
        Participant.objects.all().delete()
        Conversation.objects.all().delete()
        Contact.objects.all().delete()
        InboundEvent.objects.all().delete()
        Channel.objects.all().delete()


def test_webhook_answers_2xx_with_redis_down_and_is_processed_after(committed_db, tmp_path) -> None:
    slug = committed_db["a"].slug
    with schema_context(slug):
        channel = Channel.objects.create(kind=ChannelKind.WHATSAPP, name="WA", config=CONFIG)
    try:
        with support.throwaway_redis(tmp_path) as (redis_url, redis_process):
            redis_process.kill()
            redis_process.wait()
            port = support.free_port()
            server = support.start_process(
                support.uvicorn_command(port),
                log_path=tmp_path / "server.log",
                env=support.child_env(REDIS_URL=redis_url),
            )
            try:
                support.wait_until(lambda: _up(port), timeout=60, what="the server")
                # An operator's reply with the broker down: stored, answered 201, left pending
                # for the stuck-delivery sweeper.
                with schema_context(slug):
                    contact = Contact.objects.create(name="Ann")
                    conversation = Conversation.objects.create(channel=channel, contact=contact)
                reply = requests.post(
                    f"http://127.0.0.1:{port}/api/v1/conversations/{conversation.pk}/messages/",
                    json={"content": {"type": "text", "text": "On our way"}},
                    headers={"Authorization": f"Bearer {committed_db['a'].api_key}"},
                    timeout=10,
                )
                assert reply.status_code == 201, reply.text
                assert reply.json()["status"] == "pending"
                body = fixture_bytes("whatsapp_text")
                response = requests.post(
                    f"http://127.0.0.1:{port}/webhooks/{slug}/whatsapp/{channel.channel_token}/",
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Hub-Signature-256": meta_signature(body, "s"),
                    },
                    timeout=10,
                )
            finally:
                server.stop()
        assert response.status_code == 200, response.text
        assert response.elapsed.total_seconds() < 3
        with schema_context(slug):
            event = InboundEvent.objects.get()
            assert event.status == "received"
            assert event.queued_at is None  # never handed over: the broker was down
            # Redis is back (the suite's own); the sweeper finds the stranded event.
            InboundEvent.objects.update(received_at=timezone.now() - timedelta(minutes=5))
        with support.celery_worker(tmp_path) as _worker, schema_context(slug):
            assert inbound_events_sweep() == {"enqueued": 1}
            message = support.wait_until(
                lambda: Message.objects.filter(
                    provider_message_id="wamid.FAKE_INBOUND_TEXT_0001"
                ).first(),
                timeout=30,
                what="the event to be processed",
            )
            assert message.content == {"type": "text", "text": "Body Text"}
            assert InboundEvent.objects.get().status == "processed"
    finally:
        _cleanup(slug)


def _up(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False
