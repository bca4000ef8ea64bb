"""Instagram: webhooks in (signature, every inbound type, stories, seen receipts), the Send API
out (byte-limited text, the one reaction Instagram takes, throttling and permanent errors)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from channels_app.delivery import DeliveryDeferred, message_deliver
from channels_app.inbound import inbound_event_process
from channels_app.models import Channel, ChannelKind, InboundEvent
from conversations.models import Contact, ContactIdentity, Conversation, Message
from conversations.services.messages import message_send, message_status_update
from tests.channels.helpers import fixture, fixture_bytes, meta_signature
from tests.fakes import fake_provider

SECRET = "meta-app-secret"
ACCOUNT_ID = "17800000000000001"
IGSID = "9000000000000001"
TOKEN = "IGAA-page-token"
CONFIG = {
    "instagram_account_id": ACCOUNT_ID,
    "access_token": TOKEN,
    "app_secret": SECRET,
    "verify_token": "verify-me",
}


@pytest.fixture
def channel(tenant_a):
    with tenant_a.schema():
        return Channel.objects.create(kind=ChannelKind.INSTAGRAM, name="Shop", config=CONFIG)


@pytest.fixture
def graph(settings):
    with fake_provider() as fake:
        settings.HUB_META_GRAPH_URL = fake.url
        yield fake


def _url(tenant_slug: str, channel: Channel) -> str:
    return f"/webhooks/{tenant_slug}/instagram/{channel.channel_token}/"


def _post(client: Client, url: str, body: bytes, *, secret: str = SECRET, **headers: Any):
    headers.setdefault("HTTP_X_HUB_SIGNATURE_256", meta_signature(body, secret))
    return client.post(url, body, content_type="application/json", **headers)


def _process_all(tenant) -> None:
    with tenant.schema():
        for event_id in (
            InboundEvent.objects.filter(status="received")
            .order_by("received_at")
            .values_list("pk", flat=True)
        ):
            inbound_event_process(event_id=event_id)


def _conversation(channel: Channel) -> Conversation:
    contact = Contact.objects.create(name="Test User")
    ContactIdentity.objects.create(contact=contact, channel_kind="instagram", external_id=IGSID)
    return Conversation.objects.create(channel=channel, contact=contact, provider_thread_id=IGSID)


def _send(conversation: Conversation, content: dict[str, Any]) -> Message:
    message, _ = message_send(conversation=conversation, content=content, sender_type="ai")
    return message


def _sent(conversation: Conversation, mid: str) -> Message:
    message = _send(conversation, {"type": "text", "text": mid})
    message_status_update(message=message, status="sent", provider_message_id=mid)
    return message


# Inbound.


def test_handshake_echoes_the_challenge(client, tenant_a, channel) -> None:
    response = client.get(
        _url(tenant_a.slug, channel),
        {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "42"},
    )
    assert (response.status_code, response.content) == (200, b"42")


def test_a_redelivered_message_is_processed_once(client, tenant_a, channel) -> None:
    url = _url(tenant_a.slug, channel)
    for _ in range(3):
        assert _post(client, url, fixture_bytes("instagram_text")).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 1
        message = Message.objects.get()
        assert message.content == {"type": "text", "text": "Hello World"}
        assert message.provider_message_id == "FAKE_IG_MID_TEXT_0001"
        assert message.conversation.provider_thread_id == IGSID
        assert Contact.objects.get().identities.get().external_id == IGSID


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("instagram_image", {"type": "image", "url": "https://example.com/ig/fake-image.png"}),
        (
            "instagram_story_reply",
            {
                "type": "text",
                "text": "This is the story reply\n\n"
                "[Reply to story: https://example.com/ig/fake-story.png]",
            },
        ),
        ("instagram_like_heart", {"type": "text", "text": "\u2764\ufe0f"}),
        (
            "instagram_reaction",
            {"type": "reaction", "emoji": "\u2764\ufe0f", "message_id": "FAKE_IG_MID_OUT_0001"},
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


@pytest.mark.parametrize(
    ("name", "description"),
    [
        (
            "instagram_story_mention",
            "instagram story mention: https://example.com/ig/fake-story.png",
        ),
        ("instagram_share", "instagram share: https://example.com/ig/fake-post.jpeg"),
    ],
)
def test_story_mentions_and_shares_keep_their_link(
    client, tenant_a, channel, name, description
) -> None:
    _post(client, _url(tenant_a.slug, channel), fixture_bytes(name))
    _process_all(tenant_a)
    with tenant_a.schema():
        content = Message.objects.get().content
    assert content["type"] == "unsupported"
    assert content["description"] == description
    assert content["raw"] == fixture(name)["entry"][0]["messaging"][0]["message"]["attachments"][0]


def test_an_unsent_message_is_noted_and_the_original_kept(client, tenant_a, channel) -> None:
    url = _url(tenant_a.slug, channel)
    _post(client, url, fixture_bytes("instagram_text"))
    _post(client, url, fixture_bytes("instagram_unsent"))
    _process_all(tenant_a)
    with tenant_a.schema():
        original, unsent = Message.objects.order_by("seq")
    assert original.content == {"type": "text", "text": "Hello World"}
    assert unsent.provider_message_id == "FAKE_IG_MID_TEXT_0001:deleted"
    assert unsent.content["description"] == "instagram message unsent"


def test_the_accounts_own_messages_and_other_accounts_are_ignored(
    client, tenant_a, channel
) -> None:
    url = _url(tenant_a.slug, channel)
    _post(client, url, fixture_bytes("instagram_echo"))
    other = fixture("instagram_text")
    other["entry"][0]["id"] = "17800000000000099"
    _post(client, url, json.dumps(other).encode())
    _process_all(tenant_a)
    with tenant_a.schema():
        assert Message.objects.count() == 0
        assert set(InboundEvent.objects.values_list("status", flat=True)) == {"processed"}


def test_without_an_account_id_configured_every_entry_is_read(client, tenant_a) -> None:
    with tenant_a.schema():
        channel = Channel.objects.create(
            kind=ChannelKind.INSTAGRAM,
            name="Unpinned",
            config={k: v for k, v in CONFIG.items() if k != "instagram_account_id"},
        )
    url = _url(tenant_a.slug, channel)
    _post(client, url, fixture_bytes("instagram_text"))
    # The echo is still recognised: its sender is the entry's own account.
    echo = fixture("instagram_echo")
    echo["entry"][0]["messaging"][0]["message"].pop("is_echo")
    _post(client, url, json.dumps(echo).encode())
    _process_all(tenant_a)
    with tenant_a.schema():
        assert Message.objects.get().provider_message_id == "FAKE_IG_MID_TEXT_0001"


def test_seen_marks_the_named_message_and_those_before_it(client, tenant_a, channel) -> None:
    with tenant_a.schema():
        conversation = _conversation(channel)
        earlier = _sent(conversation, "FAKE_IG_MID_OUT_0000")
        named = _sent(conversation, "FAKE_IG_MID_OUT_0001")
        later = _sent(conversation, "FAKE_IG_MID_OUT_0002")
    _post(client, _url(tenant_a.slug, channel), fixture_bytes("instagram_read"))
    _process_all(tenant_a)
    with tenant_a.schema():
        assert Message.objects.get(pk=earlier.pk).status == "read"
        assert Message.objects.get(pk=named.pk).status == "read"
        assert Message.objects.get(pk=later.pk).status == "sent"


@pytest.mark.parametrize("headers", [{}, {"HTTP_X_HUB_SIGNATURE_256": "sha256=" + "0" * 64}])
def test_bad_or_missing_signature_is_401_and_stores_nothing(
    client, tenant_a, channel, headers
) -> None:
    response = client.post(
        _url(tenant_a.slug, channel),
        fixture_bytes("instagram_text"),
        content_type="application/json",
        **headers,
    )
    assert response.status_code == 401
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


def test_another_tenants_slug_is_404(client, tenant_a, tenant_b, channel) -> None:
    body = fixture_bytes("instagram_text")
    response = _post(client, f"/webhooks/{tenant_b.slug}/instagram/{channel.channel_token}/", body)
    assert response.status_code == 404
    for info in (tenant_a, tenant_b):
        with info.schema():
            assert InboundEvent.objects.count() == 0


# Outbound.


def test_text_is_cut_to_instagrams_byte_limit(tenant_a, channel, graph) -> None:
    graph.default(r"/me/messages", 200, {"recipient_id": IGSID, "message_id": "FAKE_IG_OUT"})
    text = "caf\u00e9 " * 300  # 1500 characters, 1800 bytes in UTF-8
    with tenant_a.schema():
        message = _send(_conversation(channel), {"type": "text", "text": text})
        message_deliver(message_id=message.pk)
        assert Message.objects.get(pk=message.pk).provider_message_id == "FAKE_IG_OUT"
    assert graph.requests[0].path == f"/me/messages?access_token={TOKEN}"
    bodies = [r.json() for r in graph.requests]
    assert {b["recipient"]["id"] for b in bodies} == {IGSID}
    assert {b["messaging_type"] for b in bodies} == {"RESPONSE"}
    pieces = [b["message"]["text"] for b in bodies]
    assert len(pieces) == 2
    assert all(len(piece.encode()) <= 1000 for piece in pieces)
    assert " ".join(pieces) == text


def test_a_heart_is_sent_as_love_and_other_reactions_fail(tenant_a, channel, graph) -> None:
    graph.default(r"/me/messages", 200, {"recipient_id": IGSID})
    with tenant_a.schema():
        conversation = _conversation(channel)
        heart = _send(
            conversation,
            {"type": "reaction", "emoji": "\u2764\ufe0f", "message_id": "FAKE_IG_MID_TEXT_0001"},
        )
        message_deliver(message_id=heart.pk)
        thumbs = _send(
            conversation,
            {"type": "reaction", "emoji": "\U0001f44d", "message_id": "FAKE_IG_MID_TEXT_0001"},
        )
        message_deliver(message_id=thumbs.pk)
        assert Message.objects.get(pk=heart.pk).status == "sent"
        failed = Message.objects.get(pk=thumbs.pk)
    assert (failed.status, failed.error_code) == ("failed", "unsupported_content")
    assert "love" in failed.error_message
    assert [r.json() for r in graph.requests] == [
        {
            "recipient": {"id": IGSID},
            "sender_action": "react",
            "payload": {"message_id": "FAKE_IG_MID_TEXT_0001", "reaction": "love"},
        }
    ]


def test_throttling_then_success_and_a_permanent_error(tenant_a, channel, graph) -> None:
    graph.then(
        r"/me/messages", 429, fixture("api_responses/messenger_send_error_613"), Retry_After="3"
    )
    graph.then(r"/me/messages", 200, fixture("api_responses/messenger_send_success"))
    graph.then(
        r"/me/messages",
        400,
        {
            "error": {
                "message": "Invalid OAuth access token.",
                "type": "OAuthException",
                "code": 190,
            }
        },
    )
    with tenant_a.schema():
        conversation = _conversation(channel)
        message = _send(conversation, {"type": "text", "text": "Hi"})
        with pytest.raises(DeliveryDeferred) as deferred:
            message_deliver(message_id=message.pk)
        assert deferred.value.retry_after == 3
        message_deliver(message_id=message.pk)
        assert Message.objects.get(pk=message.pk).status == "sent"
        revoked = _send(conversation, {"type": "text", "text": "Again"})
        message_deliver(message_id=revoked.pk)
        failed = Message.objects.get(pk=revoked.pk)
    assert (failed.status, failed.error_code, failed.error_message) == (
        "failed",
        "190",
        "Invalid OAuth access token.",
    )
