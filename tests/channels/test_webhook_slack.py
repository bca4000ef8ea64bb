"""Slack: the signing secret and its five-minute window, url_verification, events deduplicated by
event_id, threads as conversations, button clicks on the same URL, and chat.postMessage out."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client

from channels_app.delivery import DeliveryDeferred, message_deliver
from channels_app.inbound import inbound_event_process
from channels_app.models import Channel, ChannelKind, InboundEvent
from conversations.models import Contact, ContactIdentity, Conversation, Message
from conversations.services.messages import message_send
from tests.channels.helpers import fixture, fixture_bytes
from tests.fakes import fake_provider

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CONFIG = {"bot_token": "xoxb-test-token", "signing_secret": SECRET}
FORM = "application/x-www-form-urlencoded"


def slack_headers(
    body: bytes, *, secret: str = SECRET, timestamp: int | None = None
) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + stamp.encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"HTTP_X_SLACK_SIGNATURE": signature, "HTTP_X_SLACK_REQUEST_TIMESTAMP": stamp}


def form_body(payload: dict[str, Any]) -> bytes:
    return f"payload={quote(json.dumps(payload))}".encode()


@pytest.fixture
def channel(tenant_a):
    with tenant_a.schema():
        return Channel.objects.create(kind=ChannelKind.SLACK, name="Slack", config=CONFIG)


def _url(tenant, channel: Channel) -> str:
    return f"/webhooks/{tenant.slug}/slack/{channel.channel_token}/"


def _post(
    client: Client,
    tenant,
    channel: Channel,
    body: bytes,
    *,
    content_type: str = "application/json",
    **headers: Any,
):
    signed = {**slack_headers(body), **headers}
    return client.post(_url(tenant, channel), body, content_type=content_type, **signed)


def _process_all(tenant) -> None:
    with tenant.schema():
        for event_id in (
            InboundEvent.objects.filter(status="received")
            .order_by("received_at")
            .values_list("pk", flat=True)
        ):
            inbound_event_process(event_id=event_id)


# Inbound


@pytest.mark.parametrize(
    ("name", "external_id", "thread", "kind", "message_id", "content"),
    [
        (
            "slack_message_channel",
            "W111",
            "C111:1596183880.004200",
            "group",
            "C111:1596183880.004200",
            {"type": "text", "text": "Hello World!"},
        ),
        (
            "slack_message_im",
            "U2147483697",
            "D024BE91L",
            "direct",
            "D024BE91L:1355517523.000005",
            {"type": "text", "text": "Hello hello can you hear me?"},
        ),
        (
            "slack_message_file_share",
            "U111",
            "C111:1652227646.593159",
            "group",
            "C111:1652227646.593159",
            {
                "type": "image",
                "url": "https://files.slack.com/files-pri/T111-F111/file.png",
                "media_id": "F111",
                "filename": "file.png",
                "mime_type": "image/png",
                "caption": "Hi there!",
            },
        ),
    ],
)
def test_each_message_becomes_canonical_content_in_its_conversation(
    client, tenant_a, channel, name, external_id, thread, kind, message_id, content
) -> None:
    response = _post(client, tenant_a, channel, fixture_bytes(name))
    assert response.status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        message = Message.objects.get()
        assert message.content == content
        assert message.provider_message_id == message_id
        assert (message.direction, message.status) == ("in", "received")
        conversation = Conversation.objects.get()
        assert (conversation.type, conversation.provider_thread_id) == (kind, thread)
        assert message.sender_contact is not None
        identity = message.sender_contact.identities.get()
        assert (identity.channel_kind, identity.external_id) == ("slack", external_id)
        assert InboundEvent.objects.get().status == "processed"


def test_each_file_of_a_message_becomes_a_media_message(client, tenant_a, channel) -> None:
    payload = fixture("slack_message_file_share")
    pdf = {
        **payload["event"]["files"][0],
        "id": "F222",
        "name": "terms.pdf",
        "mimetype": "application/pdf",
        "url_private": "https://files.slack.com/files-pri/T111-F222/terms.pdf",
    }
    payload["event"]["files"].append(pdf)
    payload["event"]["text"] = "x" * 1500  # too long for a caption
    _post(client, tenant_a, channel, json.dumps(payload).encode())
    _process_all(tenant_a)
    with tenant_a.schema():
        messages = list(Message.objects.order_by("seq"))
    assert [(m.provider_message_id, m.content["type"]) for m in messages] == [
        ("C111:1652227646.593159", "text"),
        ("C111:1652227646.593159:file:F111", "image"),
        ("C111:1652227646.593159:file:F222", "document"),
    ]
    assert messages[2].content == {
        "type": "document",
        "url": "https://files.slack.com/files-pri/T111-F222/terms.pdf",
        "media_id": "F222",
        "filename": "terms.pdf",
        "mime_type": "application/pdf",
    }


def test_replies_in_a_slack_thread_stay_in_one_conversation(client, tenant_a, channel) -> None:
    root = fixture("slack_message_channel")
    reply = fixture("slack_message_channel")
    reply["event_id"] = "Ev112"
    reply["event"].update(ts="1596183890.000100", thread_ts="1596183880.004200", text="And more")
    other = fixture("slack_message_channel")
    other["event_id"] = "Ev113"
    other["event"].update(ts="1596183999.000100", text="A new topic")
    for payload in (root, reply, other):
        assert _post(client, tenant_a, channel, json.dumps(payload).encode()).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        threads = {
            c.provider_thread_id: [m.content["text"] for m in c.messages.order_by("seq")]
            for c in Conversation.objects.all()
        }
    assert threads == {
        "C111:1596183880.004200": ["Hello World!", "And more"],
        "C111:1596183999.000100": ["A new topic"],
    }


def test_slack_escapes_are_undone(client, tenant_a, channel) -> None:
    payload = fixture("slack_message_im")
    payload["event"]["text"] = "a &lt; b &amp;&amp; c &gt; d"
    _post(client, tenant_a, channel, json.dumps(payload).encode())
    _process_all(tenant_a)
    with tenant_a.schema():
        assert Message.objects.get().content["text"] == "a < b && c > d"


@pytest.mark.parametrize("name", ["slack_bot_message", "slack_bot_message_subtype"])
def test_bot_messages_are_acknowledged_and_ignored(client, tenant_a, channel, name) -> None:
    assert _post(client, tenant_a, channel, fixture_bytes(name)).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        assert InboundEvent.objects.get().status == "processed"
        assert Message.objects.count() == 0
        assert Conversation.objects.count() == 0


def test_the_hubs_own_echo_is_ignored(client, tenant_a, channel) -> None:
    # Without bot_id (an app posting as its bot user): known from config, or from the
    # envelope's bot authorization.
    with tenant_a.schema():
        Channel.objects.filter(pk=channel.pk).update(config={**CONFIG, "bot_user_id": "W111"})
    _post(client, tenant_a, channel, fixture_bytes("slack_message_channel"))
    echo = fixture("slack_message_im")
    echo["event_id"] = "Ev0ECHO"
    echo["authorizations"][0]["is_bot"] = True
    _post(client, tenant_a, channel, json.dumps(echo).encode())
    _process_all(tenant_a)
    with tenant_a.schema():
        assert InboundEvent.objects.filter(status="processed").count() == 2
        assert Message.objects.count() == 0


def test_an_edit_changes_the_original_message(client, tenant_a, channel) -> None:
    _post(client, tenant_a, channel, fixture_bytes("slack_message_channel"))
    _post(client, tenant_a, channel, fixture_bytes("slack_message_changed"))
    _process_all(tenant_a)
    with tenant_a.schema():
        message = Message.objects.get()
        assert message.content == {"type": "text", "text": "Hello, world!", "edited": True}
        assert (message.seq, message.provider_message_id) == (1, "C111:1596183880.004200")


def test_a_change_slack_made_itself_is_no_edit(client, tenant_a, channel) -> None:
    # A link unfurling changes the message without `edited`.
    _post(client, tenant_a, channel, fixture_bytes("slack_message_channel"))
    unfurl = fixture("slack_message_changed")
    del unfurl["event"]["message"]["edited"]
    _post(client, tenant_a, channel, json.dumps(unfurl).encode())
    _process_all(tenant_a)
    with tenant_a.schema():
        assert Message.objects.get().content == {"type": "text", "text": "Hello World!"}


def test_unknown_subtypes_are_kept_as_unsupported(client, tenant_a, channel) -> None:
    payload = fixture("slack_message_channel")
    payload["event"]["subtype"] = "huddle_thread"
    _post(client, tenant_a, channel, json.dumps(payload).encode())
    _process_all(tenant_a)
    with tenant_a.schema():
        content = Message.objects.get().content
    assert content["type"] == "unsupported"
    assert content["description"] == "slack message huddle_thread"
    assert content["raw"]["subtype"] == "huddle_thread"


def test_url_verification_is_answered_at_once_and_stored_nowhere(client, tenant_a, channel) -> None:
    body = fixture_bytes("slack_url_verification")
    response = _post(client, tenant_a, channel, body)
    assert response.status_code == 200
    assert response.json() == {"challenge": fixture("slack_url_verification")["challenge"]}
    unsigned = client.post(_url(tenant_a, channel), body, content_type="application/json")
    assert unsigned.status_code == 401
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {"HTTP_X_SLACK_SIGNATURE": "v0=" + "0" * 64},
        {"HTTP_X_SLACK_SIGNATURE": "sha256=abc"},
        {"HTTP_X_SLACK_REQUEST_TIMESTAMP": ""},
        {"HTTP_X_SLACK_REQUEST_TIMESTAMP": "not-a-time"},
    ],
)
def test_bad_or_missing_signature_is_401_and_stores_nothing(
    client, tenant_a, channel, headers
) -> None:
    body = fixture_bytes("slack_message_channel")
    # None: no Slack headers at all; otherwise a valid signature with one header spoiled.
    signed = {} if headers is None else {**slack_headers(body), **headers}
    response = client.post(_url(tenant_a, channel), body, content_type="application/json", **signed)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


# Clear of the 300-second window by more than the second that may pass between signing the
# request (with a timestamp rounded down) and the server reading its clock.
@pytest.mark.parametrize("skew", [-330, 330, -3600])
def test_a_replayed_or_future_timestamp_is_401_however_well_signed(
    client, tenant_a, channel, skew
) -> None:
    body = fixture_bytes("slack_message_channel")
    headers = slack_headers(body, timestamp=int(time.time()) + skew)
    response = client.post(
        _url(tenant_a, channel), body, content_type="application/json", **headers
    )
    assert response.status_code == 401
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


def test_a_signature_with_another_secret_or_a_changed_body_is_401(
    client, tenant_a, channel
) -> None:
    body = fixture_bytes("slack_message_channel")
    other = slack_headers(body, secret="another-secret")
    assert (
        client.post(_url(tenant_a, channel), body, content_type="application/json", **other)
    ).status_code == 401
    tampered = client.post(
        _url(tenant_a, channel),
        body.replace(b"Hello World!", b"Send money"),
        content_type="application/json",
        **slack_headers(body),
    )
    assert tampered.status_code == 401
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


def test_slacks_retries_are_processed_once(client, tenant_a, channel) -> None:
    body = fixture_bytes("slack_message_im")
    assert _post(client, tenant_a, channel, body).status_code == 200
    for attempt in ("1", "2", "3"):
        # Each retry is signed anew, with a new timestamp, and names the attempt.
        response = _post(
            client,
            tenant_a,
            channel,
            body,
            HTTP_X_SLACK_RETRY_NUM=attempt,
            HTTP_X_SLACK_RETRY_REASON="http_timeout",
        )
        assert response.status_code == 200
    _process_all(tenant_a)
    _process_all(tenant_a)
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 1
        assert Message.objects.count() == 1


def test_malformed_bodies_are_400(client, tenant_a, channel) -> None:
    assert _post(client, tenant_a, channel, b"{not json").status_code == 400
    # An event_callback without its event_id cannot be deduplicated.
    no_id = fixture("slack_message_im")
    del no_id["event_id"]
    assert _post(client, tenant_a, channel, json.dumps(no_id).encode()).status_code == 400
    assert _post(client, tenant_a, channel, b"command=%2Fhub", content_type=FORM).status_code == 400
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


def test_a_button_click_is_the_choice_in_the_threads_conversation(
    client, tenant_a, channel
) -> None:
    _post(client, tenant_a, channel, fixture_bytes("slack_message_channel"))
    body = form_body(fixture("slack_block_actions"))
    response = _post(client, tenant_a, channel, body, content_type=FORM)
    assert response.status_code == 200
    assert response.content == b""
    assert _post(client, tenant_a, channel, body, content_type=FORM).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        conversation = Conversation.objects.get()
        assert conversation.provider_thread_id == "C111:1596183880.004200"
        click = conversation.messages.order_by("seq").last()
        assert click is not None
        assert click.content == {
            "type": "text",
            "text": "Yes",
            "choice": {"id": "yes", "title": "Yes"},
            "reply_to": "C111:1596183885.004300",
        }
        assert InboundEvent.objects.count() == 2


def test_a_button_click_without_a_valid_signature_is_401(client, tenant_a, channel) -> None:
    body = form_body(fixture("slack_block_actions"))
    response = client.post(
        _url(tenant_a, channel),
        body,
        content_type=FORM,
        **slack_headers(body, secret="wrong"),
    )
    assert response.status_code == 401
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


def test_tenant_as_token_under_tenant_bs_slug_is_404(client, tenant_a, tenant_b, channel) -> None:
    body = fixture_bytes("slack_message_channel")
    wrong_tenant = client.post(
        f"/webhooks/{tenant_b.slug}/slack/{channel.channel_token}/",
        body,
        content_type="application/json",
        **slack_headers(body),
    )
    wrong_kind = client.post(
        f"/webhooks/{tenant_a.slug}/telegram/{channel.channel_token}/",
        body,
        content_type="application/json",
        **slack_headers(body),
    )
    assert (wrong_tenant.status_code, wrong_kind.status_code) == (404, 404)
    assert wrong_tenant.content == wrong_kind.content
    for info in (tenant_a, tenant_b):
        with info.schema():
            assert InboundEvent.objects.count() == 0


# Outbound


@pytest.fixture
def slack_api(settings):
    with fake_provider() as fake:
        settings.HUB_SLACK_API_URL = fake.url
        yield fake


def _conversation(thread: str, external_id: str = "W111") -> Conversation:
    channel = Channel.objects.create(kind=ChannelKind.SLACK, name="Slack", config=CONFIG)
    contact = Contact.objects.create(name="Ann")
    ContactIdentity.objects.create(contact=contact, channel_kind="slack", external_id=external_id)
    return Conversation.objects.create(channel=channel, contact=contact, provider_thread_id=thread)


def _send(conversation: Conversation, content: dict[str, Any]) -> Message:
    message, _ = message_send(conversation=conversation, content=content, sender_type="ai")
    return message


def _posted(channel: str, ts: str) -> Callable[[object], dict[str, Any]]:
    """chat.postMessage's success, with a new ts for each message after the first."""
    calls = itertools.count()

    def answer(request: object) -> dict[str, Any]:
        seconds, _, fraction = ts.partition(".")
        stamp = f"{int(seconds) + next(calls)}.{fraction}"
        return {"ok": True, "channel": channel, "ts": stamp, "message": {"ts": stamp}}

    return answer


def test_a_reply_goes_into_the_slack_thread(tenant_a, slack_api) -> None:
    slack_api.default(
        r"/chat\.postMessage$", 200, fixture("api_responses/slack_chat_postMessage_success")
    )
    with tenant_a.schema():
        message = _send(
            _conversation("C1H9RESGL:1503435900.000100"), {"type": "text", "text": "Hi <you> & co"}
        )
        message_deliver(message_id=message.pk)
        sent = Message.objects.get(pk=message.pk)
    request = slack_api.requests[0]
    assert (request.method, request.path) == ("POST", "/chat.postMessage")
    assert request.headers["authorization"] == "Bearer xoxb-test-token"
    assert request.headers["content-type"].startswith("application/json")
    assert request.json() == {
        "channel": "C1H9RESGL",
        "thread_ts": "1503435900.000100",
        "text": "Hi &lt;you&gt; &amp; co",
    }
    assert (sent.status, sent.provider_message_id) == ("sent", "C1H9RESGL:1503435956.000247")


def test_a_dm_reply_has_no_thread(tenant_a, slack_api) -> None:
    slack_api.default(r"/chat\.postMessage$", 200, _posted("D024BE91L", "1355517600.000001"))
    with tenant_a.schema():
        message = _send(_conversation("D024BE91L"), {"type": "text", "text": "Hello"})
        message_deliver(message_id=message.pk)
        assert Message.objects.get(pk=message.pk).provider_message_id == (
            "D024BE91L:1355517600.000001"
        )
    assert slack_api.requests[0].json() == {"channel": "D024BE91L", "text": "Hello"}


def test_buttons_and_lists_become_block_kit_buttons_with_a_text_fallback(
    tenant_a, slack_api
) -> None:
    slack_api.default(r"/chat\.postMessage$", 200, _posted("C111", "1596183885.004300"))
    with tenant_a.schema():
        conversation = _conversation("C111:1596183880.004200")
        buttons = {
            "type": "buttons",
            "text": "Pick one",
            "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}],
        }
        message_deliver(message_id=_send(conversation, buttons).pk)
        listing = {
            "type": "list",
            "text": "Which size?",
            "sections": [{"title": "Sizes", "rows": [{"id": "s", "title": "Small"}]}],
        }
        message_deliver(message_id=_send(conversation, listing).pk)
    first, second = (r.json() for r in slack_api.requests)
    assert first["text"] == "Pick one\n\n1. Yes\n2. No"
    assert first["thread_ts"] == "1596183880.004200"
    assert first["blocks"] == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Pick one"}},
        {
            "type": "actions",
            "block_id": "hub_choices_0",
            "elements": [
                {
                    "type": "button",
                    "action_id": "hub_choice_0",
                    "text": {"type": "plain_text", "text": "Yes"},
                    "value": "yes",
                },
                {
                    "type": "button",
                    "action_id": "hub_choice_1",
                    "text": {"type": "plain_text", "text": "No"},
                    "value": "no",
                },
            ],
        },
    ]
    assert [block["type"] for block in second["blocks"]] == ["section", "section", "actions"]
    assert second["blocks"][1]["text"]["text"] == "*Sizes*"
    assert second["blocks"][2]["elements"][0]["value"] == "s"


def test_ratelimited_is_deferred_with_retry_after_then_sent(tenant_a, slack_api) -> None:
    slack_api.then(
        r"/chat\.postMessage$",
        429,
        fixture("api_responses/slack_error_ratelimited"),
        Retry_After="7",
    )
    slack_api.default(r"/chat\.postMessage$", 200, _posted("C111", "1596183885.004300"))
    with tenant_a.schema():
        message = _send(_conversation("C111:1596183880.004200"), {"type": "text", "text": "Hi"})
        with pytest.raises(DeliveryDeferred) as deferred:
            message_deliver(message_id=message.pk)
        assert (deferred.value.code, deferred.value.retry_after) == ("ratelimited", 7)
        assert Message.objects.get(pk=message.pk).status == "pending"
        message_deliver(message_id=message.pk)
        sent = Message.objects.get(pk=message.pk)
    assert (sent.status, sent.provider_message_id) == ("sent", "C111:1596183885.004300")
    assert len(slack_api.requests) == 2


@pytest.mark.parametrize(
    ("error", "reason"),
    [("channel_not_found", "does not exist"), ("invalid_auth", "token is invalid")],
)
def test_ok_false_fails_at_once_with_slacks_code(tenant_a, slack_api, error, reason) -> None:
    slack_api.then(r"/chat\.postMessage$", 200, {"ok": False, "error": error})
    with tenant_a.schema():
        message = _send(_conversation("C111:1596183880.004200"), {"type": "text", "text": "Hi"})
        message_deliver(message_id=message.pk)
        failed = Message.objects.get(pk=message.pk)
    assert (failed.status, failed.error_code) == ("failed", error)
    assert reason in failed.error_message


def test_server_trouble_is_transient(tenant_a, slack_api) -> None:
    slack_api.then(r"/chat\.postMessage$", 503, b"upstream unavailable")
    slack_api.then(r"/chat\.postMessage$", 200, {"ok": False, "error": "service_unavailable"})
    with tenant_a.schema():
        message = _send(_conversation("C111:1596183880.004200"), {"type": "text", "text": "Hi"})
        codes = []
        for _ in range(2):
            with pytest.raises(DeliveryDeferred) as deferred:
                message_deliver(message_id=message.pk)
            codes.append(deferred.value.code)
        assert Message.objects.get(pk=message.pk).status == "pending"
    assert codes == ["503", "service_unavailable"]


def test_a_reaction_uses_reactions_add_with_slacks_name(tenant_a, slack_api) -> None:
    slack_api.default(r"/reactions\.add$", 200, {"ok": True})
    with tenant_a.schema():
        conversation = _conversation("C111:1596183880.004200")
        message = _send(
            conversation,
            {"type": "reaction", "emoji": "👍🏽", "message_id": "C111:1596183880.004200"},
        )
        message_deliver(message_id=message.pk)
        assert Message.objects.get(pk=message.pk).status == "sent"
        unknown = _send(
            conversation,
            {"type": "reaction", "emoji": "🦩", "message_id": "C111:1596183880.004200"},
        )
        message_deliver(message_id=unknown.pk)
        failed = Message.objects.get(pk=unknown.pk)
    assert [r.path for r in slack_api.requests] == ["/reactions.add"]
    assert slack_api.requests[0].json() == {
        "channel": "C111",
        "timestamp": "1596183880.004200",
        "name": "thumbsup",
    }
    assert (failed.status, failed.error_code) == ("failed", "unsupported_emoji")


def test_one_slack_channel_gets_a_small_burst_then_one_a_second(tenant_a, slack_api) -> None:
    slack_api.default(r"/chat\.postMessage$", 200, _posted("C111", "1596183885.004300"))
    with tenant_a.schema():
        conversation = _conversation("C111:1596183880.004200")
        messages = [_send(conversation, {"type": "text", "text": f"m{i}"}) for i in range(5)]
        deferred: list[DeliveryDeferred] = []
        for message in messages:
            try:
                message_deliver(message_id=message.pk)
            except DeliveryDeferred as error:
                deferred.append(error)
    assert len(slack_api.requests) == 3
    assert [(d.code, d.counts_as_attempt) for d in deferred] == [("rate_limited", False)] * 2
    assert all(0 < (d.retry_after or 0) <= 1.01 for d in deferred)
