"""Signal through a signal-cli REST API: receive by polling (and the opt-in json-rpc webhook),
send with /v2/send; the REST API is a fake HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import pytest
from django.core.files.base import ContentFile

from channels_app.delivery import DeliveryDeferred, message_deliver
from channels_app.inbound import inbound_event_process
from channels_app.jobs import poll_signal
from channels_app.models import Channel, ChannelKind, InboundEvent
from channels_app.polling import signal_poll_channels
from conversations.models import Contact, ContactIdentity, Conversation, Message
from conversations.services.attachments import attachment_create, message_send_with_attachment
from conversations.services.messages import message_send
from jobs.registry import JOBS
from jobs.schedules import DEFAULT_SCHEDULES
from tests.channels.helpers import fixture, fixture_bytes
from tests.fakes import FakeProvider, fake_provider

ACCOUNT = "+15555550100"
CONTACT_UUID = "00000000-0000-4000-8000-000000000001"
GROUP_ID = "RkFLRUdST1VQSURGQUtFR1JPVVBJREZBS0VHUk9VUElEMDE="
SENT_TIMESTAMP = "1631458508784"


@pytest.fixture
def signal_api():
    with fake_provider() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


def _channel(api_url: str = "http://127.0.0.1:9", **extra: Any) -> Channel:
    return Channel.objects.create(
        kind=ChannelKind.SIGNAL,
        name="Signal",
        config={"api_url": api_url, "number": ACCOUNT, **extra},
    )


@pytest.fixture
def webhook_channel(tenant_a):
    with tenant_a.schema():
        return _channel(accept_webhook=True)


def _post(client, tenant, channel, body: bytes):
    return client.post(
        f"/webhooks/{tenant.slug}/signal/{channel.channel_token}/",
        body,
        content_type="application/json",
    )


def _process_all() -> None:
    for event_id in (
        InboundEvent.objects.filter(status="received")
        .order_by("received_at")
        .values_list("pk", flat=True)
    ):
        inbound_event_process(event_id=event_id)


# --- Receiving -------------------------------------------------------------------------------


def test_a_polled_message_becomes_a_direct_conversation(tenant_a, signal_api) -> None:
    signal_api.default(r"^/v1/receive/", 200, fixture("signal_receive_v1"))
    with tenant_a.schema():
        channel = _channel(signal_api.url)
        assert signal_poll_channels() == {"channels": 1, "recorded": 1, "failed": 0}
        _process_all()
        message = Message.objects.get()
        conversation = Conversation.objects.get()
        contact = message.sender_contact
        assert message.content == {"type": "text", "text": "Hello World"}
        assert message.provider_message_id == f"{CONTACT_UUID}:1631458508784"
        assert (conversation.channel, conversation.type) == (channel, "direct")
        assert conversation.provider_thread_id == ""
        assert contact is not None
        assert (contact.name, contact.phone) == ("Test User", "+15555550123")
        assert ContactIdentity.objects.get(contact=contact).external_id == CONTACT_UUID
    request = signal_api.requests[0]
    assert (request.method, request.path) == ("GET", "/v1/receive/+15555550100?timeout=1")


def test_a_message_polled_twice_is_recorded_once(tenant_a, signal_api) -> None:
    signal_api.default(r"^/v1/receive/", 200, fixture("signal_receive_v1"))
    with tenant_a.schema():
        _channel(signal_api.url)
        assert signal_poll_channels()["recorded"] == 1
        assert signal_poll_channels()["recorded"] == 0
        _process_all()
        assert InboundEvent.objects.count() == 1
        assert Message.objects.count() == 1


def test_the_poll_job_is_registered_and_scheduled_every_minute(tenant_a, signal_api) -> None:
    assert JOBS["channels.poll_signal"] is poll_signal
    assert ("channels.poll_signal", "*", "*") in DEFAULT_SCHEDULES.values()
    signal_api.default(r"^/v1/receive/", 200, [])
    with tenant_a.schema():
        _channel(signal_api.url)
        assert poll_signal() == {"channels": 1, "recorded": 0, "failed": 0}


def test_an_unreachable_api_is_counted_and_the_others_still_polled(tenant_a, signal_api) -> None:
    signal_api.default(r"^/v1/receive/", 200, fixture("signal_receive_v1"))
    with tenant_a.schema():
        _channel("http://127.0.0.1:9")  # nothing listens on the discard port
        _channel(signal_api.url)
        assert signal_poll_channels() == {"channels": 2, "recorded": 1, "failed": 1}


def test_webhook_fed_channels_are_not_polled(tenant_a, signal_api) -> None:
    with tenant_a.schema():
        _channel(signal_api.url, accept_webhook=True)
        assert signal_poll_channels() == {"channels": 0, "recorded": 0, "failed": 0}
    assert signal_api.requests == []


def test_the_jsonrpc_webhook_is_accepted_when_the_channel_opts_in(
    client, tenant_a, webhook_channel
) -> None:
    response = _post(client, tenant_a, webhook_channel, fixture_bytes("signal_jsonrpc_receive"))
    assert response.status_code == 200
    with tenant_a.schema():
        _process_all()
        assert Message.objects.get().content == {"type": "text", "text": "Hello World"}


def test_a_group_attachment_opens_a_group_conversation(client, tenant_a, webhook_channel) -> None:
    body = fixture_bytes("signal_jsonrpc_receive_group_attachment")
    assert _post(client, tenant_a, webhook_channel, body).status_code == 200
    with tenant_a.schema():
        _process_all()
        conversation = Conversation.objects.get()
        assert (conversation.type, conversation.provider_thread_id) == ("group", GROUP_ID)
        assert Message.objects.get().content == {
            "type": "image",
            "media_id": "FAKEATTACHMENTID0001.jpg",
            "mime_type": "image/jpeg",
            "filename": "IMG_0001.jpg",
            "caption": "photo from the group",
        }


@pytest.mark.parametrize("accept", [None, False, "true"])
def test_the_webhook_is_refused_unless_the_channel_opts_in(client, tenant_a, accept) -> None:
    with tenant_a.schema():
        extra = {} if accept is None else {"accept_webhook": accept}
        channel = _channel(**extra)
    response = _post(client, tenant_a, channel, fixture_bytes("signal_jsonrpc_receive"))
    assert response.status_code == 401
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


def test_a_redelivered_webhook_is_processed_once(client, tenant_a, webhook_channel) -> None:
    for _ in range(3):
        response = _post(client, tenant_a, webhook_channel, fixture_bytes("signal_jsonrpc_receive"))
        assert response.status_code == 200
    with tenant_a.schema():
        _process_all()
        assert InboundEvent.objects.count() == 1
        assert Message.objects.count() == 1


def test_a_body_without_an_envelope_is_400(client, tenant_a, webhook_channel) -> None:
    body = json.dumps({"jsonrpc": "2.0", "method": "receive", "params": {}}).encode()
    assert _post(client, tenant_a, webhook_channel, body).status_code == 400
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


def test_another_tenants_channel_token_is_404(client, tenant_a, tenant_b, webhook_channel) -> None:
    response = _post(client, tenant_b, webhook_channel, fixture_bytes("signal_jsonrpc_receive"))
    assert response.status_code == 404
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


# --- Sending ---------------------------------------------------------------------------------


def _conversation(channel: Channel, *, group: bool = False) -> Conversation:
    contact = Contact.objects.create(name="Test User", phone="+15555550123")
    ContactIdentity.objects.create(
        contact=contact, channel_kind=ChannelKind.SIGNAL, external_id=CONTACT_UUID
    )
    return Conversation.objects.create(
        channel=channel,
        contact=contact,
        provider_thread_id=GROUP_ID if group else "",
        type="group" if group else "direct",
    )


def _send_text(conversation: Conversation, text: str = "Hi there") -> Message:
    message, _ = message_send(
        conversation=conversation, content={"type": "text", "text": text}, sender_type="ai"
    )
    return message


TIMESTAMPS = itertools.count(1631458600000)


def _new_timestamp(request: object) -> dict[str, str]:
    return {"timestamp": str(next(TIMESTAMPS))}


def _sent(signal_api: FakeProvider) -> list[dict[str, Any]]:
    return [r.json() for r in signal_api.requests if r.path == "/v2/send"]


def test_text_is_sent_and_the_timestamp_kept(tenant_a, signal_api) -> None:
    signal_api.default(r"^/v2/send$", 201, fixture("api_responses/signal_send_success"))
    with tenant_a.schema():
        message = _send_text(_conversation(_channel(signal_api.url)))
        message_deliver(message_id=message.pk)
        message.refresh_from_db()
    assert _sent(signal_api) == [
        {
            "number": ACCOUNT,
            "recipients": [CONTACT_UUID],
            "message": "Hi there",
            "text_mode": "normal",
        }
    ]
    assert (message.status, message.provider_message_id) == ("sent", SENT_TIMESTAMP)


def test_a_group_reply_goes_to_the_group(tenant_a, signal_api) -> None:
    signal_api.default(r"^/v2/send$", 201, fixture("api_responses/signal_send_success"))
    with tenant_a.schema():
        message = _send_text(_conversation(_channel(signal_api.url), group=True))
        message_deliver(message_id=message.pk)
    expected = "group." + base64.b64encode(GROUP_ID.encode()).decode()
    assert _sent(signal_api)[0]["recipients"] == [expected]


def test_buttons_become_a_numbered_list_and_files_base64(tenant_a, signal_api) -> None:
    signal_api.default(r"^/v2/send$", 201, _new_timestamp)
    with tenant_a.schema():
        conversation = _conversation(_channel(signal_api.url))
        buttons = {
            "type": "buttons",
            "text": "Pick one",
            "buttons": [{"id": "a", "title": "Apples"}, {"id": "b", "title": "Pears"}],
        }
        message_deliver(
            message_id=message_send(conversation=conversation, content=buttons, sender_type="ai")[
                0
            ].pk
        )
        attachment = attachment_create(
            conversation=conversation,
            file=ContentFile(b"\x89PNG fake"),
            filename="chart.png",
            content_type="image/png",
        )
        message, _ = message_send_with_attachment(
            conversation=conversation,
            content={"type": "image", "attachment_id": str(attachment.pk), "caption": "Chart"},
            sender_type="operator",
        )
        message_deliver(message_id=message.pk)
    text, image = _sent(signal_api)
    assert text["message"] == "Pick one\n\n1. Apples\n2. Pears"
    assert image["message"] == "Chart"
    encoded = base64.b64encode(b"\x89PNG fake").decode()
    assert image["base64_attachments"] == [f"data:image/png;filename=chart.png;base64,{encoded}"]


def test_a_rate_limit_is_retried_after_the_providers_wait(tenant_a, signal_api) -> None:
    signal_api.then(r"^/v2/send$", 429, {"error": "Too many requests"}, Retry_After="4")
    signal_api.default(r"^/v2/send$", 201, fixture("api_responses/signal_send_success"))
    with tenant_a.schema():
        message = _send_text(_conversation(_channel(signal_api.url)))
        with pytest.raises(DeliveryDeferred) as deferred:
            message_deliver(message_id=message.pk)
        assert (deferred.value.code, deferred.value.retry_after) == ("429", 4)
        assert Message.objects.get(pk=message.pk).status == "pending"
        message_deliver(message_id=message.pk)
        assert Message.objects.get(pk=message.pk).status == "sent"


def test_a_server_error_is_transient(tenant_a, signal_api) -> None:
    signal_api.default(r"^/v2/send$", 500, {"error": "signal-cli crashed"})
    with tenant_a.schema():
        message = _send_text(_conversation(_channel(signal_api.url)))
        with pytest.raises(DeliveryDeferred):
            message_deliver(message_id=message.pk)


def test_a_captcha_challenge_fails_the_message_with_what_to_do(tenant_a, signal_api) -> None:
    signal_api.default(r"^/v2/send$", 429, fixture("api_responses/signal_send_error_429_challenge"))
    with tenant_a.schema():
        message = _send_text(_conversation(_channel(signal_api.url)))
        message_deliver(message_id=message.pk)
        message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "rate_limit_challenge")
    assert "captcha" in message.error_message


def test_an_unregistered_recipient_fails_permanently(tenant_a, signal_api) -> None:
    signal_api.default(r"^/v2/send$", 400, fixture("api_responses/signal_send_error_400"))
    with tenant_a.schema():
        message = _send_text(_conversation(_channel(signal_api.url)))
        message_deliver(message_id=message.pk)
        message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", "400")
    assert "Unregistered user" in message.error_message


def test_receipts_out_of_order_leave_the_message_read(tenant_a, signal_api) -> None:
    signal_api.default(r"^/v2/send$", 201, fixture("api_responses/signal_send_success"))
    signal_api.default(r"^/v1/receive/", 200, fixture("signal_receive_v1_receipts"))
    with tenant_a.schema():
        message = _send_text(_conversation(_channel(signal_api.url)))
        message_deliver(message_id=message.pk)
        assert signal_poll_channels()["recorded"] == 2
        _process_all()
        message.refresh_from_db()
    assert message.status == "read"


def test_a_reaction_to_the_hubs_message_names_it(client, tenant_a, signal_api) -> None:
    signal_api.default(r"^/v2/send$", 201, fixture("api_responses/signal_send_success"))
    with tenant_a.schema():
        channel = _channel(signal_api.url, accept_webhook=True)
        sent = _send_text(_conversation(channel))
        message_deliver(message_id=sent.pk)
    body = fixture_bytes("signal_jsonrpc_receive_reaction")
    assert _post(client, tenant_a, channel, body).status_code == 200
    with tenant_a.schema():
        _process_all()
        reaction = Message.objects.get(direction="in")
        assert reaction.content == {
            "type": "reaction",
            "emoji": "👍",
            "message_id": SENT_TIMESTAMP,
        }
        assert reaction.conversation_id == sent.conversation_id


def test_a_reaction_is_sent_to_the_reactions_endpoint(tenant_a, signal_api) -> None:
    signal_api.default(r"^/v1/reactions/", 204, b"")
    with tenant_a.schema():
        conversation = _conversation(_channel(signal_api.url))
        reaction = {"type": "reaction", "emoji": "❤️", "message_id": f"{CONTACT_UUID}:1631458508784"}
        message, _ = message_send(conversation=conversation, content=reaction, sender_type="ai")
        message_deliver(message_id=message.pk)
        message.refresh_from_db()
    request = signal_api.requests[0]
    assert (request.method, request.path) == ("POST", "/v1/reactions/+15555550100")
    assert request.json() == {
        "recipient": CONTACT_UUID,
        "reaction": "❤️",
        "target_author": CONTACT_UUID,
        "timestamp": 1631458508784,
    }
    assert message.status == "sent"
