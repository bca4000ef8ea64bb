"""Telegram webhooks: the secret-token header, updates deduplicated by update_id, every type."""

from __future__ import annotations

import json

import pytest

from channels_app.inbound import inbound_event_process
from channels_app.models import Channel, ChannelKind, InboundEvent
from conversations.models import Conversation, Message
from tests.channels.helpers import fixture, fixture_bytes

SECRET = "tg-secret_token-123"


@pytest.fixture
def channel(tenant_a):
    with tenant_a.schema():
        return Channel.objects.create(
            kind=ChannelKind.TELEGRAM,
            name="Bot",
            config={"bot_token": "123:ABC", "secret_token": SECRET},
        )


def _post(client, tenant, channel, body: bytes, secret: str | None = SECRET):
    headers = {"HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": secret} if secret is not None else {}
    return client.post(
        f"/webhooks/{tenant.slug}/telegram/{channel.channel_token}/",
        body,
        content_type="application/json",
        **headers,
    )


def _process_all(tenant) -> None:
    with tenant.schema():
        for event_id in (
            InboundEvent.objects.filter(status="received")
            .order_by("received_at")
            .values_list("pk", flat=True)
        ):
            inbound_event_process(event_id=event_id)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("telegram_text", {"type": "text", "text": "Hello World"}),
        (
            "telegram_photo",
            {"type": "image", "media_id": "AgACAgFAKEPHOTOFILEID0004", "caption": "Photo Caption"},
        ),
        (
            "telegram_voice",
            {
                "type": "audio",
                "media_id": "AwADBAADbXXXXXXXXXXXGBdhD2l6_XX",
                "voice": True,
                "mime_type": "audio/ogg",
            },
        ),
        ("telegram_location", {"type": "location", "latitude": -2.890287, "longitude": -79.004333}),
        (
            "telegram_callback_query",
            {
                "type": "text",
                "text": "Yes",
                "choice": {"id": "answer:yes", "title": "Yes"},
                "reply_to": "1111111:1369",
            },
        ),
    ],
)
def test_each_update_type_becomes_canonical_content(
    client, tenant_a, channel, name, expected
) -> None:
    assert _post(client, tenant_a, channel, fixture_bytes(name)).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        message = Message.objects.get()
        assert message.content == expected
        conversation = Conversation.objects.get()
        assert (conversation.type, conversation.provider_thread_id) == ("direct", "1111111")
        assert message.sender_contact is not None
        assert message.sender_contact.name == "Test Firstname Test Lastname"
        assert message.sender_contact.language == "en"


def test_an_edit_changes_the_original_message(client, tenant_a, channel) -> None:
    _post(client, tenant_a, channel, fixture_bytes("telegram_text"))
    _post(client, tenant_a, channel, fixture_bytes("telegram_edited_message"))
    _process_all(tenant_a)
    with tenant_a.schema():
        message = Message.objects.get()
        assert message.content == {"type": "text", "text": "Edited text", "edited": True}
        assert message.seq == 1


@pytest.mark.parametrize("secret", [None, "", "wrong-secret"])
def test_wrong_or_missing_secret_token_is_401(client, tenant_a, channel, secret) -> None:
    assert (
        _post(client, tenant_a, channel, fixture_bytes("telegram_text"), secret=secret).status_code
        == 401
    )
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


def test_a_redelivered_update_is_processed_once(client, tenant_a, channel) -> None:
    for _ in range(3):
        assert _post(client, tenant_a, channel, fixture_bytes("telegram_text")).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 1
        assert Message.objects.count() == 1


def test_a_group_message_opens_a_group_conversation(client, tenant_a, channel) -> None:
    update = fixture("telegram_text")
    update["message"]["chat"] = {"id": -100200, "title": "Team", "type": "supergroup"}
    _post(client, tenant_a, channel, json.dumps(update).encode())
    _process_all(tenant_a)
    with tenant_a.schema():
        conversation = Conversation.objects.get()
        assert (conversation.type, conversation.provider_thread_id) == ("group", "-100200")


def test_an_update_without_update_id_is_400(client, tenant_a, channel) -> None:
    response = _post(client, tenant_a, channel, b'{"message": {}}')
    assert response.status_code == 400
