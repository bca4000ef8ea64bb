"""WhatsApp Cloud API webhooks: handshake, signatures, the durable inbox and every inbound type."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from channels_app.inbound import inbound_event_process
from channels_app.models import Channel, ChannelKind, InboundEvent
from conversations.models import Contact, Conversation, Message
from conversations.services.messages import message_send, message_status_update
from tests.channels.helpers import fixture, fixture_bytes, meta_signature

SECRET = "meta-app-secret"
CONFIG = {
    "phone_number_id": "100000000000002",
    "access_token": "EAAG-token",
    "app_secret": SECRET,
    "verify_token": "verify-me",
}


@pytest.fixture
def channel(tenant_a):
    with tenant_a.schema():
        return Channel.objects.create(kind=ChannelKind.WHATSAPP, name="WhatsApp", config=CONFIG)


def _url(tenant_slug: str, channel: Channel) -> str:
    return f"/webhooks/{tenant_slug}/whatsapp/{channel.channel_token}/"


def _post(client: Client, url: str, body: bytes, *, secret: str = SECRET, **headers: Any):
    headers.setdefault("HTTP_X_HUB_SIGNATURE_256", meta_signature(body, secret))
    return client.post(url, body, content_type="application/json", **headers)


def _process_all(tenant) -> None:
    with tenant.schema():
        for event_id in InboundEvent.objects.filter(status="received").values_list("pk", flat=True):
            inbound_event_process(event_id=event_id)


def test_handshake_echoes_the_challenge_only_for_the_verify_token(
    client, tenant_a, channel
) -> None:
    url = _url(tenant_a.slug, channel)
    ok = client.get(
        url,
        {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"},
    )
    assert ok.status_code == 200
    assert ok.content == b"1158201444"
    wrong = client.get(
        url, {"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}
    )
    assert wrong.status_code == 403
    assert client.get(url, {"hub.challenge": "1"}).status_code == 403


def test_text_message_is_stored_then_processed_once(client, tenant_a, channel) -> None:
    body = fixture_bytes("whatsapp_text")
    url = _url(tenant_a.slug, channel)
    assert _post(client, url, body).status_code == 200
    assert _post(client, url, body).status_code == 200
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 1
    _process_all(tenant_a)
    _process_all(tenant_a)
    with tenant_a.schema():
        message = Message.objects.get()
        assert message.content == {"type": "text", "text": "Body Text"}
        assert message.provider_message_id == "wamid.FAKE_INBOUND_TEXT_0001"
        assert (message.direction, message.status) == ("in", "received")
        contact = Contact.objects.get()
        assert (contact.name, contact.phone) == ("Test User", "+15555550123")
        assert contact.identities.get().external_id == "15555550123"
        assert InboundEvent.objects.get().status == "processed"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "whatsapp_image",
            {"type": "image", "media_id": "1000000000000101", "mime_type": "image/jpeg"},
        ),
        (
            "whatsapp_audio",
            {
                "type": "audio",
                "media_id": "1000000000000102",
                "mime_type": "audio/ogg; codecs=opus",
                "voice": True,
            },
        ),
        (
            "whatsapp_video",
            {
                "type": "video",
                "media_id": "1000000000000103",
                "mime_type": "video/mp4",
                "caption": "caption",
            },
        ),
        (
            "whatsapp_document",
            {
                "type": "document",
                "media_id": "1000000000000104",
                "mime_type": "application/pdf",
                "caption": "caption",
                "filename": "filename.pdf",
            },
        ),
        (
            "whatsapp_location",
            {
                "type": "location",
                "latitude": 37.4611978,
                "longitude": -122.2164385,
                "name": "Test Place",
                "address": "1 Example Street, Exampleville",
            },
        ),
        (
            "whatsapp_interactive_button_reply",
            {
                "type": "text",
                "text": "title",
                "choice": {"id": "callback_data", "title": "title"},
                "reply_to": "wamid.FAKE_OUTBOUND_0001",
            },
        ),
        (
            "whatsapp_interactive_list_reply",
            {
                "type": "text",
                "text": "title",
                "choice": {"id": "callback_data", "title": "title"},
                "reply_to": "wamid.FAKE_OUTBOUND_0001",
            },
        ),
        (
            "whatsapp_button",
            {
                "type": "text",
                "text": "title",
                "choice": {"id": "callback_data", "title": "title"},
                "reply_to": "wamid.FAKE_OUTBOUND_0001",
            },
        ),
        (
            "whatsapp_reaction",
            {"type": "reaction", "emoji": "\U0001f62e", "message_id": "wamid.FAKE_OUTBOUND_0001"},
        ),
    ],
)
def test_every_inbound_type_becomes_canonical_content(
    client, tenant_a, channel, name, expected
) -> None:
    assert _post(client, _url(tenant_a.slug, channel), fixture_bytes(name)).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        assert Message.objects.get().content == expected


def test_unknown_types_are_kept_as_unsupported(client, tenant_a, channel) -> None:
    payload = fixture("whatsapp_text")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message.pop("text")
    message.update(type="order", order={"catalog_id": "1"})
    assert (
        _post(client, _url(tenant_a.slug, channel), json.dumps(payload).encode()).status_code == 200
    )
    _process_all(tenant_a)
    with tenant_a.schema():
        content = Message.objects.get().content
        assert content["type"] == "unsupported"
        assert content["raw"]["order"] == {"catalog_id": "1"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_X_HUB_SIGNATURE_256": "sha256=" + "0" * 64},
        {"HTTP_X_HUB_SIGNATURE_256": "md5=abc"},
    ],
)
def test_bad_or_missing_signature_is_401_and_stores_nothing(
    client, tenant_a, channel, headers
) -> None:
    body = fixture_bytes("whatsapp_text")
    response = client.post(
        _url(tenant_a.slug, channel), body, content_type="application/json", **headers
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


def test_signature_with_another_secret_is_401(client, tenant_a, channel) -> None:
    response = _post(
        client, _url(tenant_a.slug, channel), fixture_bytes("whatsapp_text"), secret="other"
    )
    assert response.status_code == 401


def test_oversized_wrong_type_and_malformed_bodies(client, tenant_a, channel) -> None:
    url = _url(tenant_a.slug, channel)
    big = b'{"x": "' + b"a" * (1024 * 1024) + b'"}'
    assert _post(client, url, big).status_code == 413
    response = client.post(url, "a=b", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    malformed = _post(client, url, b"{not json")
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "malformed_body"
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


def test_unknown_slug_kind_or_token_is_the_same_404(client, tenant_a, tenant_b, channel) -> None:
    body = fixture_bytes("whatsapp_text")
    responses = [
        _post(client, f"/webhooks/nobody_here/whatsapp/{channel.channel_token}/", body),
        _post(client, f"/webhooks/{tenant_a.slug}/telegram/{channel.channel_token}/", body),
        _post(client, f"/webhooks/{tenant_a.slug}/whatsapp/not-a-token-000000/", body),
        # Tenant A's channel token under tenant B's slug.
        _post(client, f"/webhooks/{tenant_b.slug}/whatsapp/{channel.channel_token}/", body),
    ]
    assert {r.status_code for r in responses} == {404}
    assert len({r.content for r in responses}) == 1
    for info in (tenant_a, tenant_b):
        with info.schema():
            assert InboundEvent.objects.count() == 0


def test_disabled_channel_and_suspended_tenant_are_refused(client, tenant_a, channel) -> None:
    from tenants.services import tenant_suspend

    with tenant_a.schema():
        Channel.objects.filter(pk=channel.pk).update(enabled=False)
    assert (
        _post(client, _url(tenant_a.slug, channel), fixture_bytes("whatsapp_text")).status_code
        == 404
    )
    with tenant_a.schema():
        Channel.objects.filter(pk=channel.pk).update(enabled=True)
    tenant_suspend(tenant=tenant_a.tenant)
    assert (
        _post(client, _url(tenant_a.slug, channel), fixture_bytes("whatsapp_text")).status_code
        == 403
    )


def test_statuses_move_forward_only_whatever_their_order(client, tenant_a, channel) -> None:
    url = _url(tenant_a.slug, channel)
    with tenant_a.schema():
        contact = Contact.objects.create(name="Test User")
        conversation = Conversation.objects.create(channel=channel, contact=contact)
        message, _ = message_send(
            conversation=conversation, content={"type": "text", "text": "hi"}, sender_type="ai"
        )
        message_status_update(
            message=message, status="sent", provider_message_id="wamid.FAKE_OUTBOUND_0001"
        )
    for name in ("whatsapp_status_read", "whatsapp_status_delivered", "whatsapp_status_sent"):
        assert _post(client, url, fixture_bytes(name)).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        assert Message.objects.get(pk=message.pk).status == "read"


def test_failed_status_keeps_the_providers_code_and_reason(client, tenant_a, channel) -> None:
    with tenant_a.schema():
        contact = Contact.objects.create(name="Test User")
        conversation = Conversation.objects.create(channel=channel, contact=contact)
        message, _ = message_send(
            conversation=conversation, content={"type": "text", "text": "hi"}, sender_type="ai"
        )
        message_status_update(
            message=message, status="sent", provider_message_id="wamid.FAKE_OUTBOUND_0001"
        )
    assert (
        _post(
            client, _url(tenant_a.slug, channel), fixture_bytes("whatsapp_status_failed")
        ).status_code
        == 200
    )
    _process_all(tenant_a)
    with tenant_a.schema():
        failed = Message.objects.get(pk=message.pk)
        assert failed.status == "failed"
        assert failed.error_code == "131047"
        assert "24 hours" in failed.error_message


def test_an_event_that_fails_part_way_leaves_nothing_and_is_tried_again(
    client, tenant_a, channel, monkeypatch
) -> None:
    import channels_app.inbound as inbound

    payload = fixture("whatsapp_text")
    value = payload["entry"][0]["changes"][0]["value"]
    second = {**value["messages"][0], "id": "wamid.SECOND"}
    value["messages"].append(second)
    url = _url(tenant_a.slug, channel)
    assert _post(client, url, json.dumps(payload).encode()).status_code == 200
    received = inbound.message_receive

    def fail_on_the_second(**kwargs: Any):
        if kwargs["provider_message_id"] == "wamid.SECOND":
            raise RuntimeError("the database went away")
        return received(**kwargs)

    monkeypatch.setattr(inbound, "message_receive", fail_on_the_second)
    with tenant_a.schema():
        event_id = InboundEvent.objects.get().pk
        failed = inbound_event_process(event_id=event_id)
        assert failed is not None
        assert (failed.status, failed.attempts) == ("received", 1)
        assert failed.error == "RuntimeError: the database went away"
        # The first message, its contact and conversation went with the failed attempt.
        assert not Message.objects.exists()
        assert not Contact.objects.exists()
        assert not Conversation.objects.exists()
        monkeypatch.setattr(inbound, "message_receive", received)
        processed = inbound_event_process(event_id=event_id)
        assert processed is not None
        assert (processed.status, processed.attempts, processed.error) == ("processed", 2, "")
        assert sorted(Message.objects.values_list("provider_message_id", flat=True)) == [
            "wamid.FAKE_INBOUND_TEXT_0001",
            "wamid.SECOND",
        ]
