"""Messenger: Page webhooks in (signature, every inbound type, watermark receipts), the Send API
out (quick replies, attachments, reactions, throttling and permanent errors)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from channels_app.delivery import DeliveryDeferred, message_deliver
from channels_app.inbound import inbound_event_process
from channels_app.models import Channel, ChannelKind, InboundEvent
from channels_app.providers import provider_for
from channels_app.providers.base import OutboundMessage, RateLimit
from conversations.models import Contact, ContactIdentity, Conversation, Message
from conversations.services.messages import message_send, message_status_update
from tests.channels.helpers import fixture, fixture_bytes, meta_signature
from tests.fakes import Recorded, fake_provider

SECRET = "meta-app-secret"
PAGE_ID = "100000000000010"
PSID = "2000000000000001"
TOKEN = "EAAG-page-token"
CONFIG = {
    "page_id": PAGE_ID,
    "access_token": TOKEN,
    "app_secret": SECRET,
    "verify_token": "verify-me",
}


@pytest.fixture
def channel(tenant_a):
    with tenant_a.schema():
        return Channel.objects.create(kind=ChannelKind.MESSENGER, name="Page", config=CONFIG)


@pytest.fixture
def graph(settings):
    with fake_provider() as fake:
        settings.HUB_META_GRAPH_URL = fake.url
        yield fake


def _url(tenant_slug: str, channel: Channel) -> str:
    return f"/webhooks/{tenant_slug}/messenger/{channel.channel_token}/"


def _post(client: Client, url: str, body: bytes, *, secret: str = SECRET, **headers: Any):
    headers.setdefault("HTTP_X_HUB_SIGNATURE_256", meta_signature(body, secret))
    return client.post(url, body, content_type="application/json", **headers)


def _post_json(client: Client, url: str, payload: dict[str, Any]):
    return _post(client, url, json.dumps(payload).encode())


def _process_all(tenant) -> None:
    with tenant.schema():
        for event_id in (
            InboundEvent.objects.filter(status="received")
            .order_by("received_at")
            .values_list("pk", flat=True)
        ):
            inbound_event_process(event_id=event_id)


def _event(payload: dict[str, Any]) -> dict[str, Any]:
    return payload["entry"][0]["messaging"][0]


def _conversation(channel: Channel) -> Conversation:
    contact = Contact.objects.create(name="Test User")
    ContactIdentity.objects.create(contact=contact, channel_kind="messenger", external_id=PSID)
    return Conversation.objects.create(channel=channel, contact=contact, provider_thread_id=PSID)


def _sent(conversation: Conversation, mid: str) -> Message:
    message, _ = message_send(
        conversation=conversation, content={"type": "text", "text": mid}, sender_type="ai"
    )
    message_status_update(message=message, status="sent", provider_message_id=mid)
    return message


def _send(conversation: Conversation, content: dict[str, Any]) -> Message:
    message, _ = message_send(conversation=conversation, content=content, sender_type="operator")
    return message


def _mid_for(request: Recorded) -> str:
    return "m_FAKE_" + hashlib.sha256(request.body).hexdigest()[:16]


def _mid(request: Recorded) -> dict[str, Any]:
    """A Send API answer with an id of its own for each request."""
    return {"recipient_id": PSID, "message_id": _mid_for(request)}


# Inbound.


def test_handshake_echoes_the_challenge_only_for_the_verify_token(
    client, tenant_a, channel
) -> None:
    url = _url(tenant_a.slug, channel)
    ok = client.get(
        url,
        {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"},
    )
    assert (ok.status_code, ok.content) == (200, b"1158201444")
    wrong = client.get(
        url, {"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}
    )
    assert wrong.status_code == 403


def test_text_is_stored_then_processed_once(client, tenant_a, channel) -> None:
    body = fixture_bytes("messenger_text")
    url = _url(tenant_a.slug, channel)
    assert _post(client, url, body).status_code == 200
    assert _post(client, url, body).status_code == 200
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 1
    _process_all(tenant_a)
    # The same message re-batched in another body (another hash) is still one message.
    rebatched = fixture("messenger_text")
    rebatched["entry"][0]["time"] += 1
    assert _post_json(client, url, rebatched).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        message = Message.objects.get()
        assert message.content == {"type": "text", "text": "Hello World"}
        assert message.provider_message_id == "m_FAKE_MID_TEXT_0001"
        assert (message.direction, message.status) == ("in", "received")
        conversation = Conversation.objects.get()
        assert (conversation.type, conversation.provider_thread_id) == ("direct", PSID)
        assert Contact.objects.get().identities.get().external_id == PSID
        assert set(InboundEvent.objects.values_list("status", flat=True)) == {"processed"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "messenger_postback",
            {
                "type": "text",
                "text": "Get Started",
                "choice": {"id": "get_started", "title": "Get Started"},
            },
        ),
        ("messenger_image", {"type": "image", "url": "https://example.com/fb/fake-image.png"}),
        ("messenger_audio", {"type": "audio", "url": "https://example.com/fb/fake-audio.mp4"}),
        ("messenger_video", {"type": "video", "url": "https://example.com/fb/fake-video.mp4"}),
        (
            "messenger_file",
            {
                "type": "document",
                "url": "https://example.com/fb/v/fake_n.pdf/report%20Q1.pdf?_nc_cat=1",
                "filename": "report Q1.pdf",
            },
        ),
        (
            "messenger_sticker",
            {"type": "image", "url": "https://example.com/fb/fake-thumbs-up.png", "sticker": True},
        ),
        ("messenger_location", {"type": "location", "latitude": 1.2, "longitude": -1.3}),
        (
            "messenger_quick_reply",
            {"type": "text", "text": "Yes", "choice": {"id": "answer:yes", "title": "Yes"}},
        ),
        (
            "messenger_reply_to",
            {"type": "text", "text": "That one", "reply_to": "m_FAKE_MID_OUT_0001"},
        ),
        (
            "messenger_reaction",
            {"type": "reaction", "emoji": "\u2764\ufe0f", "message_id": "m_FAKE_MID_OUT_0001"},
        ),
    ],
)
def test_every_inbound_type_becomes_canonical_content(
    client, tenant_a, channel, name, expected
) -> None:
    assert _post(client, _url(tenant_a.slug, channel), fixture_bytes(name)).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        message = Message.objects.get()
        assert message.content == expected
        assert message.conversation.provider_thread_id == PSID
        assert InboundEvent.objects.get().status == "processed"


def test_a_removed_reaction_has_no_emoji_and_its_own_id(client, tenant_a, channel) -> None:
    url = _url(tenant_a.slug, channel)
    _post(client, url, fixture_bytes("messenger_reaction"))
    unreact = fixture("messenger_reaction")
    _event(unreact)["reaction"] = {"action": "unreact", "mid": "m_FAKE_MID_OUT_0001"}
    _event(unreact)["timestamp"] += 1000
    _post_json(client, url, unreact)
    _process_all(tenant_a)
    with tenant_a.schema():
        removed = Message.objects.order_by("seq").last()
        assert removed is not None
        assert removed.content == {
            "type": "reaction",
            "emoji": "",
            "message_id": "m_FAKE_MID_OUT_0001",
        }
        assert Message.objects.count() == 2


def test_the_pages_own_messages_are_ignored(client, tenant_a, channel) -> None:
    assert (
        _post(client, _url(tenant_a.slug, channel), fixture_bytes("messenger_echo")).status_code
        == 200
    )
    _process_all(tenant_a)
    with tenant_a.schema():
        assert Message.objects.count() == 0
        assert Contact.objects.count() == 0
        assert InboundEvent.objects.get().status == "processed"


def test_an_edit_changes_the_original_message(client, tenant_a, channel) -> None:
    url = _url(tenant_a.slug, channel)
    _post(client, url, fixture_bytes("messenger_text"))
    _post(client, url, fixture_bytes("messenger_message_edit"))
    _process_all(tenant_a)
    with tenant_a.schema():
        message = Message.objects.get()
        assert message.content == {"type": "text", "text": "Hello World, edited", "edited": True}
        assert message.seq == 1


def test_several_attachments_become_several_messages_and_link_previews_are_dropped(
    client, tenant_a, channel
) -> None:
    url = _url(tenant_a.slug, channel)
    payload = fixture("messenger_image")
    _event(payload)["message"]["attachments"].append(
        {"type": "video", "payload": {"url": "https://example.com/fb/fake-video.mp4"}}
    )
    _post_json(client, url, payload)
    link = fixture("messenger_text")
    _event(link)["message"] = {
        "mid": "m_FAKE_MID_LINK_0001",
        "text": "https://example.com/page",
        "attachments": [
            {"type": "fallback", "payload": {"url": "https://example.com/page", "title": "Page"}}
        ],
    }
    _post_json(client, url, link)
    _process_all(tenant_a)
    with tenant_a.schema():
        assert list(
            Message.objects.order_by("seq").values_list("provider_message_id", "content__type")
        ) == [
            ("m_FAKE_MID_IMAGE_0001", "image"),
            ("m_FAKE_MID_IMAGE_0001:1", "video"),
            ("m_FAKE_MID_LINK_0001", "text"),
        ]


def test_unknown_events_and_attachments_are_kept_as_unsupported(client, tenant_a, channel) -> None:
    url = _url(tenant_a.slug, channel)
    referral = fixture("messenger_text")
    event = _event(referral)
    event.pop("message")
    event["referral"] = {"ref": "summer", "source": "SHORTLINK", "type": "OPEN_THREAD"}
    _post_json(client, url, referral)
    template = fixture("messenger_image")
    _event(template)["message"]["attachments"] = [
        {"type": "template", "payload": {"product": {"elements": [{"id": "1"}]}}}
    ]
    _post_json(client, url, template)
    handover = fixture("messenger_text")
    _event(handover).pop("message")
    _event(handover)["pass_thread_control"] = {"new_owner_app_id": "123", "metadata": ""}
    _post_json(client, url, handover)
    _process_all(tenant_a)
    with tenant_a.schema():
        first, second = Message.objects.order_by("seq")
        assert first.content["type"] == "unsupported"
        assert first.content["description"] == "messenger referral"
        assert first.content["raw"]["referral"]["ref"] == "summer"
        assert second.content["description"] == "messenger template"
        assert second.content["raw"]["type"] == "template"


def test_another_pages_entries_are_skipped(client, tenant_a, channel) -> None:
    payload = fixture("messenger_text")
    payload["entry"][0]["id"] = "100000000000099"
    _post_json(client, _url(tenant_a.slug, channel), payload)
    _process_all(tenant_a)
    with tenant_a.schema():
        assert Message.objects.count() == 0
        assert InboundEvent.objects.get().status == "processed"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_X_HUB_SIGNATURE_256": "sha256=" + "0" * 64},
        {"HTTP_X_HUB_SIGNATURE_256": "sha1=abc"},
    ],
)
def test_bad_or_missing_signature_is_401_and_stores_nothing(
    client, tenant_a, channel, headers
) -> None:
    response = client.post(
        _url(tenant_a.slug, channel),
        fixture_bytes("messenger_text"),
        content_type="application/json",
        **headers,
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    other = _post(
        client, _url(tenant_a.slug, channel), fixture_bytes("messenger_text"), secret="other"
    )
    assert other.status_code == 401
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


def test_unknown_slug_kind_or_token_is_the_same_404(client, tenant_a, tenant_b, channel) -> None:
    body = fixture_bytes("messenger_text")
    responses = [
        _post(client, f"/webhooks/{tenant_a.slug}/instagram/{channel.channel_token}/", body),
        _post(client, f"/webhooks/{tenant_a.slug}/messenger/not-a-token-000000/", body),
        # Tenant A's channel token under tenant B's slug.
        _post(client, f"/webhooks/{tenant_b.slug}/messenger/{channel.channel_token}/", body),
    ]
    assert {r.status_code for r in responses} == {404}
    assert len({r.content for r in responses}) == 1
    for info in (tenant_a, tenant_b):
        with info.schema():
            assert InboundEvent.objects.count() == 0


def test_watermark_receipts_mark_earlier_outbound_messages(client, tenant_a, channel) -> None:
    url = _url(tenant_a.slug, channel)
    with tenant_a.schema():
        conversation = _conversation(channel)
        unnamed = _sent(conversation, "m_FAKE_MID_OUT_0000")
        named = _sent(conversation, "m_FAKE_MID_OUT_0001")
        later = _sent(conversation, "m_FAKE_MID_OUT_0002")
        Message.objects.filter(pk=later.pk).update(created_at=timezone.now() + timedelta(minutes=5))
    watermark = int((timezone.now() + timedelta(seconds=1)).timestamp() * 1000)
    delivery = fixture("messenger_delivery")
    _event(delivery)["delivery"]["watermark"] = watermark
    _post_json(client, url, delivery)
    _process_all(tenant_a)
    with tenant_a.schema():
        statuses = dict(Message.objects.values_list("provider_message_id", "status"))
    assert statuses == {
        "m_FAKE_MID_OUT_0000": "delivered",
        "m_FAKE_MID_OUT_0001": "delivered",
        "m_FAKE_MID_OUT_0002": "sent",
    }
    read = fixture("messenger_read")
    _event(read)["read"]["watermark"] = watermark
    _post_json(client, url, read)
    _process_all(tenant_a)
    with tenant_a.schema():
        assert Message.objects.get(pk=unnamed.pk).status == "read"
        assert Message.objects.get(pk=named.pk).status == "read"
        assert Message.objects.get(pk=later.pk).status == "sent"


def test_receipts_out_of_order_never_move_a_status_back(client, tenant_a, channel) -> None:
    url = _url(tenant_a.slug, channel)
    with tenant_a.schema():
        message = _sent(_conversation(channel), "m_FAKE_MID_OUT_0001")
    watermark = int((timezone.now() + timedelta(seconds=1)).timestamp() * 1000)
    read = fixture("messenger_read")
    _event(read)["read"]["watermark"] = watermark
    _post_json(client, url, read)
    # The fixture's own delivery: named by mid, with a watermark from long ago.
    _post(client, url, fixture_bytes("messenger_delivery"))
    _process_all(tenant_a)
    with tenant_a.schema():
        assert Message.objects.get(pk=message.pk).status == "read"
        assert set(InboundEvent.objects.values_list("status", flat=True)) == {"processed"}


def test_a_delivery_named_by_mid_marks_that_message(client, tenant_a, channel) -> None:
    with tenant_a.schema():
        message = _sent(_conversation(channel), "m_FAKE_MID_OUT_0001")
        other = _sent(message.conversation, "m_FAKE_MID_OUT_0003")
    # The watermark is from 2016: only the named message is covered.
    _post(client, _url(tenant_a.slug, channel), fixture_bytes("messenger_delivery"))
    _process_all(tenant_a)
    with tenant_a.schema():
        assert Message.objects.get(pk=message.pk).status == "delivered"
        assert Message.objects.get(pk=other.pk).status == "sent"


# Outbound.


def test_text_goes_to_the_send_api_as_a_response(tenant_a, channel, graph) -> None:
    graph.default(r"/me/messages", 200, fixture("api_responses/messenger_send_success"))
    with tenant_a.schema():
        message = _send(_conversation(channel), {"type": "text", "text": "Hi"})
        message_deliver(message_id=message.pk)
        sent = Message.objects.get(pk=message.pk)
    request = graph.requests[0]
    assert request.path == f"/me/messages?access_token={TOKEN}"
    assert request.json() == {
        "messaging_type": "RESPONSE",
        "recipient": {"id": PSID},
        "message": {"text": "Hi"},
    }
    assert (sent.status, sent.provider_message_id) == ("sent", "m_FAKE_MID_OUT_0001")


def test_choices_become_quick_replies_or_numbered_text(tenant_a, channel, graph) -> None:
    graph.default(r"/me/messages", 200, _mid)
    few = [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}]
    many = [{"id": f"r{i}", "title": f"Option {i}"} for i in range(10)]
    long_title = [{"id": "a", "title": "A title far longer than twenty characters"}]
    with tenant_a.schema():
        conversation = _conversation(channel)
        for content in (
            {"type": "buttons", "text": "Pick", "buttons": few},
            {
                "type": "list",
                "text": "Pick",
                "sections": [{"rows": many[:7]}, {"rows": many[7:] + many[:4]}],
            },
            {"type": "buttons", "text": "Pick", "buttons": long_title},
        ):
            message_deliver(message_id=_send(conversation, content).pk)
    quick, numbered, too_long = (r.json()["message"] for r in graph.requests)
    assert quick == {
        "text": "Pick",
        "quick_replies": [
            {"content_type": "text", "title": "Yes", "payload": "yes"},
            {"content_type": "text", "title": "No", "payload": "no"},
        ],
    }
    assert "quick_replies" not in numbered
    assert numbered["text"].startswith("Pick\n\n1. Option 0\n")
    assert "14. Option 3" in numbered["text"]
    assert too_long == {"text": "Pick\n\n1. A title far longer than twenty characters"}


def test_media_goes_by_url_and_its_caption_follows(tenant_a, channel, graph) -> None:
    graph.default(r"/me/messages", 200, _mid)
    with tenant_a.schema():
        conversation = _conversation(channel)
        image = _send(
            conversation,
            {"type": "image", "url": "https://example.com/a.jpg", "caption": "Look"},
        )
        message_deliver(message_id=image.pk)
        document = _send(conversation, {"type": "document", "url": "https://example.com/a.pdf"})
        message_deliver(message_id=document.pk)
        image_id = Message.objects.get(pk=image.pk).provider_message_id
    attachment, caption, file = (r.json()["message"] for r in graph.requests)
    assert attachment == {
        "attachment": {
            "type": "image",
            "payload": {"url": "https://example.com/a.jpg", "is_reusable": True},
        }
    }
    assert caption == {"text": "Look"}
    assert file["attachment"]["type"] == "file"
    # The id kept is the last request's: a receipt for it covers the attachment before it.
    assert image_id == _mid_for(graph.requests[1])


def test_a_long_text_is_sent_in_pieces_within_the_limit(tenant_a, channel, graph) -> None:
    graph.default(r"/me/messages", 200, _mid)
    text = " ".join(["word"] * 900)  # 4499 characters
    with tenant_a.schema():
        message_deliver(
            message_id=_send(_conversation(channel), {"type": "text", "text": text[:4096]}).pk
        )
    pieces = [r.json()["message"]["text"] for r in graph.requests]
    assert len(pieces) == 3
    assert all(len(piece) <= 2000 for piece in pieces)
    assert " ".join(pieces) == text[:4096]


def test_reactions_are_sender_actions(tenant_a, channel, graph) -> None:
    graph.default(r"/me/messages", 200, fixture("api_responses/messenger_sender_action_success"))
    with tenant_a.schema():
        conversation = _conversation(channel)
        react = _send(
            conversation,
            {"type": "reaction", "emoji": "\U0001f44d", "message_id": "m_FAKE_MID_TEXT_0001"},
        )
        message_deliver(message_id=react.pk)
        unreact = _send(
            conversation, {"type": "reaction", "emoji": "", "message_id": "m_FAKE_MID_TEXT_0001"}
        )
        message_deliver(message_id=unreact.pk)
        assert Message.objects.get(pk=react.pk).status == "sent"
    assert [r.json() for r in graph.requests] == [
        {
            "recipient": {"id": PSID},
            "sender_action": "react",
            "payload": {"message_id": "m_FAKE_MID_TEXT_0001", "reaction": "\U0001f44d"},
        },
        {
            "recipient": {"id": PSID},
            "sender_action": "unreact",
            "payload": {"message_id": "m_FAKE_MID_TEXT_0001"},
        },
    ]


def test_throttling_is_retried_after_the_providers_wish(tenant_a, channel, graph) -> None:
    graph.then(
        r"/me/messages", 429, fixture("api_responses/messenger_send_error_613"), Retry_After="7"
    )
    graph.then(r"/me/messages", 400, {"error": {"code": 1200, "message": "Temporary failure"}})
    graph.default(r"/me/messages", 200, fixture("api_responses/messenger_send_success"))
    with tenant_a.schema():
        message = _send(_conversation(channel), {"type": "text", "text": "Hi"})
        with pytest.raises(DeliveryDeferred) as throttled:
            message_deliver(message_id=message.pk)
        assert (throttled.value.code, throttled.value.retry_after) == ("613", 7)
        with pytest.raises(DeliveryDeferred) as temporary:
            message_deliver(message_id=message.pk)
        assert temporary.value.code == "1200"
        assert Message.objects.get(pk=message.pk).status == "pending"
        message_deliver(message_id=message.pk)
        assert Message.objects.get(pk=message.pk).status == "sent"


@pytest.mark.parametrize(
    ("answer", "code", "reason"),
    [
        ("messenger_send_error_outside_window", "10", "outside of allowed window"),
        ("messenger_send_error_551", "551", "isn't available"),
    ],
)
def test_permanent_errors_fail_at_once_with_the_reason(
    tenant_a, channel, graph, answer, code, reason
) -> None:
    graph.then(r"/me/messages", 400, fixture(f"api_responses/{answer}"))
    with tenant_a.schema():
        message = _send(_conversation(channel), {"type": "text", "text": "Hi"})
        message_deliver(message_id=message.pk)
        failed = Message.objects.get(pk=message.pk)
    assert (failed.status, failed.error_code) == ("failed", code)
    assert reason in failed.error_message


def test_media_without_a_url_fails_without_a_request(tenant_a, channel, graph) -> None:
    with tenant_a.schema():
        message = _send(_conversation(channel), {"type": "image", "media_id": "wa-media-1"})
        message_deliver(message_id=message.pk)
        failed = Message.objects.get(pk=message.pk)
    assert (failed.status, failed.error_code) == ("failed", "unsupported_content")
    assert graph.requests == []


def test_rate_limits_stay_under_metas_published_rates(tenant_a, channel) -> None:
    provider = provider_for(kind="messenger", config=CONFIG)
    assert provider is not None

    def limits(kind: str) -> list[RateLimit]:
        content = {"type": kind, "url": "https://example.com/a"}
        outbound = OutboundMessage(message_id="1", recipient=PSID, thread_id=PSID, content=content)
        return provider.rate_limits(message=outbound, config=CONFIG)

    assert limits("image") == [
        RateLimit(scope="account", capacity=100, per_seconds=1),
        RateLimit(scope=f"thread:{PSID}", capacity=5, per_seconds=5),
    ]
    assert RateLimit(scope="audio-video", capacity=5, per_seconds=1) in limits("video")
