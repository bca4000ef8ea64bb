"""Outbound delivery through fake providers: success, transient and permanent failures,
rate limits, dead letters and the retry endpoint."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from channels_app import delivery
from channels_app.delivery import DeliveryDeferred, message_deliver
from channels_app.models import Channel, DeadLetter
from channels_app.tasks import message_deliver_task
from conversations.models import Contact, ContactIdentity, Conversation, Message
from conversations.services.messages import message_send
from tests.channels.helpers import fixture
from tests.fakes import fake_provider

WA_CONFIG = {
    "phone_number_id": "100000000000002",
    "access_token": "EAAG-token",
    "app_secret": "s",
    "verify_token": "v",
}
TG_CONFIG = {"bot_token": "123:ABC", "secret_token": "sec"}


def _conversation(
    kind: str, config: dict[str, Any], external_id: str, thread: str = ""
) -> Conversation:
    channel = Channel.objects.create(kind=kind, name=kind, config=config)
    contact = Contact.objects.create(name="Ann")
    ContactIdentity.objects.create(contact=contact, channel_kind=kind, external_id=external_id)
    return Conversation.objects.create(channel=channel, contact=contact, provider_thread_id=thread)


def _send(conversation: Conversation, content: dict[str, Any]) -> Message:
    message, _ = message_send(conversation=conversation, content=content, sender_type="ai")
    return message


@pytest.fixture
def graph(settings):
    with fake_provider() as fake:
        settings.HUB_META_GRAPH_URL = fake.url
        yield fake


@pytest.fixture
def telegram(settings):
    with fake_provider() as fake:
        settings.HUB_TELEGRAM_API_URL = fake.url
        yield fake


def test_whatsapp_text_is_sent_and_the_provider_id_kept(tenant_a, graph) -> None:
    graph.default(r"/messages$", 200, fixture("api_responses/whatsapp_send_success"))
    with tenant_a.schema():
        message = _send(
            _conversation("whatsapp", WA_CONFIG, "15555550123"), {"type": "text", "text": "Hi"}
        )
        message_deliver(message_id=message.pk)
        sent = Message.objects.get(pk=message.pk)
    request = graph.requests[0]
    assert request.path == "/100000000000002/messages"
    assert request.headers["authorization"] == "Bearer EAAG-token"
    assert request.json() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "15555550123",
        "type": "text",
        "text": {"body": "Hi", "preview_url": False},
    }
    assert sent.status == "sent"
    assert (
        sent.provider_message_id
        == fixture("api_responses/whatsapp_send_success")["messages"][0]["id"]
    )


def _wamid(request: object) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "messages": [{"id": f"wamid.{uuid.uuid4().hex}"}]}


def test_whatsapp_buttons_and_long_lists_become_interactive(tenant_a, graph) -> None:
    graph.default(r"/messages$", 200, _wamid)
    with tenant_a.schema():
        conversation = _conversation("whatsapp", WA_CONFIG, "15555550123")
        buttons = [{"id": f"b{i}", "title": f"Option {i}"} for i in range(3)]
        message_deliver(
            message_id=_send(
                conversation, {"type": "buttons", "text": "Pick", "buttons": buttons}
            ).pk
        )
        many = [{"id": f"b{i}", "title": f"Option {i}"} for i in range(5)]
        message_deliver(
            message_id=_send(conversation, {"type": "buttons", "text": "Pick", "buttons": many}).pk
        )
    first, second = (r.json()["interactive"] for r in graph.requests)
    assert first["type"] == "button"
    assert [b["reply"]["id"] for b in first["action"]["buttons"]] == ["b0", "b1", "b2"]
    assert second["type"] == "list"
    assert len(second["action"]["sections"][0]["rows"]) == 5


def test_throttling_is_deferred_with_the_providers_retry_after(tenant_a, graph) -> None:
    graph.then(
        r"/messages$", 429, fixture("api_responses/whatsapp_send_error_130429"), Retry_After="7"
    )
    with tenant_a.schema():
        message = _send(
            _conversation("whatsapp", WA_CONFIG, "15555550123"), {"type": "text", "text": "Hi"}
        )
        with pytest.raises(DeliveryDeferred) as deferred:
            message_deliver(message_id=message.pk)
        assert deferred.value.retry_after == 7
        assert delivery.backoff_seconds(0, retry_after=deferred.value.retry_after) >= 7
        assert Message.objects.get(pk=message.pk).status == "pending"


def test_the_24_hour_window_fails_at_once_with_the_reason(tenant_a, graph) -> None:
    graph.then(r"/messages$", 400, {"error": {"code": 131047, "message": "Re-engagement message"}})
    with tenant_a.schema():
        message = _send(
            _conversation("whatsapp", WA_CONFIG, "15555550123"), {"type": "text", "text": "Hi"}
        )
        message_deliver(message_id=message.pk)
        failed = Message.objects.get(pk=message.pk)
    assert (failed.status, failed.error_code, failed.error_message) == (
        "failed",
        "131047",
        "Re-engagement message",
    )


def test_telegram_buttons_become_an_inline_keyboard(tenant_a, telegram) -> None:
    telegram.default(r"/sendMessage$", 200, fixture("api_responses/telegram_sendMessage_success"))
    with tenant_a.schema():
        conversation = _conversation("telegram", TG_CONFIG, "1111111", thread="1111111")
        content = {
            "type": "buttons",
            "text": "Pick",
            "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}],
        }
        message = _send(conversation, content)
        message_deliver(message_id=message.pk)
        assert Message.objects.get(pk=message.pk).provider_message_id == "1111111:1370"
    request = telegram.requests[0]
    assert request.path == "/bot123:ABC/sendMessage"
    assert request.json()["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Yes", "callback_data": "yes"}],
            [{"text": "No", "callback_data": "no"}],
        ]
    }


def test_telegram_429_carries_retry_after_and_403_fails(tenant_a, telegram) -> None:
    telegram.then(r"/sendMessage$", 429, fixture("api_responses/telegram_error_429"))
    telegram.then(r"/sendMessage$", 403, fixture("api_responses/telegram_error_403_blocked"))
    with tenant_a.schema():
        conversation = _conversation("telegram", TG_CONFIG, "1111111", thread="1111111")
        message = _send(conversation, {"type": "text", "text": "Hi"})
        with pytest.raises(DeliveryDeferred) as deferred:
            message_deliver(message_id=message.pk)
        assert deferred.value.retry_after == 2282
        time.sleep(1.05)  # the per-chat bucket allows one message a second
        message_deliver(message_id=message.pk)
        failed = Message.objects.get(pk=message.pk)
    assert failed.status == "failed"
    assert failed.error_code == "403"
    assert "blocked" in failed.error_message


def test_the_per_chat_rate_is_never_exceeded(tenant_a, telegram) -> None:
    telegram.default(r"/sendMessage$", 200, fixture("api_responses/telegram_sendMessage_success"))
    with tenant_a.schema():
        conversation = _conversation("telegram", TG_CONFIG, "1111111", thread="1111111")
        messages = [_send(conversation, {"type": "text", "text": f"m{i}"}) for i in range(3)]
        deferred: list[DeliveryDeferred] = []
        for message in messages:
            try:
                message_deliver(message_id=message.pk)
            except DeliveryDeferred as error:
                deferred.append(error)
    assert [(d.code, d.counts_as_attempt) for d in deferred] == [("rate_limited", False)] * 2
    assert len(telegram.requests) == 1


def test_exhausted_attempts_land_in_the_dead_letter_list_and_retry_redelivers(
    tenant_a, graph, settings
) -> None:
    settings.HUB_DELIVERY_MAX_ATTEMPTS = 1
    graph.then(
        r"/messages$", 500, {"error": {"code": 2, "message": "Service temporarily unavailable"}}
    )
    graph.default(r"/messages$", 200, fixture("api_responses/whatsapp_send_success"))
    with tenant_a.schema():
        message = _send(
            _conversation("whatsapp", WA_CONFIG, "15555550123"), {"type": "text", "text": "Hi"}
        )
        message_deliver_task.apply(args=[str(message.pk)])
        dead = DeadLetter.objects.get(message=message)
        assert dead.error_code == "2"
        assert Message.objects.get(pk=message.pk).status == "failed"
    response = tenant_a.client().post(f"/api/v1/messages/{message.pk}/retry/")
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    with tenant_a.schema():
        message_deliver(message_id=message.pk)
        assert Message.objects.get(pk=message.pk).status == "sent"
        assert DeadLetter.objects.get(message=message).requeued_at is not None


def test_retry_refuses_what_is_not_failed_and_other_tenants_messages(
    tenant_a, tenant_b, graph
) -> None:
    with tenant_a.schema():
        message = _send(
            _conversation("webchat", {"allowed_origins": []}, "v1"), {"type": "text", "text": "Hi"}
        )
    response = tenant_a.client().post(f"/api/v1/messages/{message.pk}/retry/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_retryable"
    other = tenant_b.client().post(f"/api/v1/messages/{message.pk}/retry/")
    assert other.status_code == 404


def test_admin_lists_dead_letters_and_requeues_them(tenant_a, graph, settings, client) -> None:
    from django.contrib.auth import get_user_model

    settings.HUB_DELIVERY_MAX_ATTEMPTS = 1
    graph.then(r"/messages$", 503, {"error": {"code": 2, "message": "Unavailable"}})
    with tenant_a.schema():
        message = _send(
            _conversation("whatsapp", WA_CONFIG, "15555550123"), {"type": "text", "text": "Hi"}
        )
        message_deliver_task.apply(args=[str(message.pk)])
        dead = DeadLetter.objects.get(message=message)
        get_user_model().objects.create_superuser(username="ops", password="pw-ops-123456")
    client.post(
        f"/t/{tenant_a.slug}/admin/login/", {"username": "ops", "password": "pw-ops-123456"}
    )
    listing = client.get(f"/t/{tenant_a.slug}/admin/channels_app/deadletter/")
    assert listing.status_code == 200
    assert (
        b"Unavailable"
        in client.get(f"/t/{tenant_a.slug}/admin/channels_app/deadletter/{dead.pk}/change/").content
    )
    response = client.post(
        f"/t/{tenant_a.slug}/admin/channels_app/deadletter/",
        {"action": "requeue", "_selected_action": [dead.pk]},
    )
    assert response.status_code == 302
    with tenant_a.schema():
        assert Message.objects.get(pk=message.pk).status == "pending"
        assert DeadLetter.objects.get(pk=dead.pk).requeued_at is not None


def test_a_channel_can_send_slower_than_the_providers_rate(tenant_a, graph) -> None:
    graph.default(r"/messages$", 200, _wamid)
    config = {**WA_CONFIG, "messages_per_second": 0.5}
    with tenant_a.schema():
        conversation = _conversation("whatsapp", config, "15555550123")
        first, second = (_send(conversation, {"type": "text", "text": t}) for t in ("a", "b"))
        message_deliver(message_id=first.pk)
        with pytest.raises(DeliveryDeferred) as deferred:
            message_deliver(message_id=second.pk)
    assert deferred.value.code == "rate_limited"
    assert 1.5 < (deferred.value.retry_after or 0) <= 2.0
    assert len(graph.requests) == 1


def test_the_rate_setting_is_validated(tenant_a) -> None:
    response = tenant_a.client().post(
        "/api/v1/channels/",
        {
            "kind": "telegram",
            "name": "Bot",
            "config": {
                "bot_token": "123456:" + "A" * 30,
                "secret_token": "s",
                "messages_per_second": -1,
            },
        },
        format="json",
    )
    assert response.status_code == 400
    assert "config.messages_per_second" in response.json()["error"]["details"]


def test_a_delivery_whose_task_was_lost_is_swept(tenant_a, graph) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from channels_app.delivery import pending_deliveries_sweep

    graph.default(r"/messages$", 200, _wamid)
    with tenant_a.schema():
        message = _send(
            _conversation("whatsapp", WA_CONFIG, "15555550123"), {"type": "text", "text": "Hi"}
        )
        # Recent: its task may still be on the way.
        assert pending_deliveries_sweep() == {"enqueued": 0}
        Message.objects.filter(pk=message.pk).update(updated_at=timezone.now() - timedelta(hours=1))
        assert pending_deliveries_sweep() == {"enqueued": 1}
        message_deliver(message_id=message.pk)
        assert Message.objects.get(pk=message.pk).status == "sent"
        assert pending_deliveries_sweep() == {"enqueued": 0}
