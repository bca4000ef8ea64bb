"""Twilio (SMS/MMS and WhatsApp through Twilio): form-encoded webhooks signed over the public
URL, every inbound type, status callbacks, and the Messages API through a fake Twilio."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.test import Client

from channels_app.delivery import DeliveryDeferred, message_deliver
from channels_app.inbound import inbound_event_process
from channels_app.models import Channel, ChannelKind, InboundEvent
from channels_app.providers.twilio import twilio_signature
from conversations.models import Contact, ContactIdentity, Conversation, Message
from conversations.services.messages import message_send, message_status_update
from tests.channels.helpers import fixture
from tests.fakes import FakeProvider, fake_provider

TOKEN = "twilio-auth-token-0000"
ACCOUNT = "AC0000000000000000000000000000000a"
SMS_CONFIG = {
    "provider": "twilio",
    "account_sid": ACCOUNT,
    "auth_token": TOKEN,
    "from_number": "+15555550100",
}
WA_CONFIG = {**SMS_CONFIG}
TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"


def sign(url: str, fields: dict[str, Any], token: str = TOKEN) -> str:
    """Twilio's scheme, written out independently of the adapter: the URL, then each POST
    parameter sorted by name as name+value, HMAC-SHA1, Base64."""
    data = url
    for name in sorted(fields):
        values = fields[name] if isinstance(fields[name], list) else [fields[name]]
        for value in sorted(set(values)):
            data += name + value
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


@pytest.fixture
def sms(tenant_a) -> Channel:
    with tenant_a.schema():
        return Channel.objects.create(kind=ChannelKind.SMS, name="SMS", config=SMS_CONFIG)


@pytest.fixture
def whatsapp(tenant_a) -> Channel:
    with tenant_a.schema():
        return Channel.objects.create(kind=ChannelKind.WHATSAPP, name="WA", config=WA_CONFIG)


@pytest.fixture
def twilio(settings):
    with fake_provider() as fake:
        settings.HUB_TWILIO_API_URL = fake.url
        yield fake


def _path(tenant, channel: Channel) -> str:
    return f"/webhooks/{tenant.slug}/{channel.kind}/{channel.channel_token}/"


def _post(
    client: Client,
    path: str,
    fields: dict[str, Any],
    *,
    signed_url: str | None = None,
    signature: str | None = None,
):
    """Posts the fields form-encoded, signed over `signed_url` (the public URL by default)."""
    if signature is None:
        signature = sign(signed_url or f"http://testserver{path}", fields)
    return client.post(
        path,
        urlencode(fields, doseq=True),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature} if signature else {},
    )


def _process_all(tenant) -> None:
    with tenant.schema():
        for event_id in (
            InboundEvent.objects.filter(status="received")
            .order_by("received_at")
            .values_list("pk", flat=True)
        ):
            inbound_event_process(event_id=event_id)


def _outbound(channel: Channel, provider_id: str, external_id: str = "+15555550123") -> Message:
    contact = Contact.objects.create(name="Test User")
    ContactIdentity.objects.create(
        contact=contact, channel_kind=channel.kind, external_id=external_id
    )
    conversation = Conversation.objects.create(channel=channel, contact=contact)
    message, _ = message_send(
        conversation=conversation, content={"type": "text", "text": "hi"}, sender_type="ai"
    )
    if provider_id:
        message_status_update(message=message, status="sent", provider_message_id=provider_id)
    return message


# Signatures


def test_the_documented_test_vector() -> None:
    params = {
        "CallSid": ["CA1234567890ABCDE"],
        "Caller": ["+14158675309"],
        "Digits": ["1234"],
        "From": ["+14158675309"],
        "To": ["+18005551212"],
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature(auth_token="12345", url=url, params=params) == (
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    )
    assert sign(url, {k: v[0] for k, v in params.items()}, "12345") == (
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    )


def test_repeated_values_are_sorted_and_deduplicated() -> None:
    url = "https://example.com/hook"
    ordered = twilio_signature(auth_token="t", url=url, params={"A": ["1", "2"]})
    assert twilio_signature(auth_token="t", url=url, params={"A": ["2", "1", "2"]}) == ordered
    assert ordered == sign(url, {"A": ["1", "2"]}, "t")


@pytest.mark.parametrize("signature", ["", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "not base64 at all"])
def test_bad_or_missing_signature_is_401_and_stores_nothing(
    client, tenant_a, sms, signature
) -> None:
    response = _post(
        client, _path(tenant_a, sms), fixture("twilio_sms_inbound"), signature=signature
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


def test_another_token_or_a_tampered_field_is_401(client, tenant_a, sms) -> None:
    path = _path(tenant_a, sms)
    fields = fixture("twilio_sms_inbound")
    other = sign(f"http://testserver{path}", fields, token="another-token")
    assert _post(client, path, fields, signature=other).status_code == 401
    genuine = sign(f"http://testserver{path}", fields)
    tampered = {**fields, "Body": "Send me the money"}
    assert _post(client, path, tampered, signature=genuine).status_code == 401
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


def test_the_signed_url_is_the_public_one_with_or_without_its_port(
    client, tenant_a, sms, settings
) -> None:
    """Behind a proxy the hub sees http://testserver; Twilio signed HUB_PUBLIC_URL."""
    settings.HUB_PUBLIC_URL = "https://hub.example.com"
    path = _path(tenant_a, sms)
    fields = fixture("twilio_sms_inbound")
    internal = _post(client, path, fields, signed_url=f"http://testserver{path}")
    assert internal.status_code == 401
    for public in (f"https://hub.example.com{path}", f"https://hub.example.com:443{path}"):
        assert _post(client, path, fields, signed_url=public).status_code == 200
    query = f"{path}?source=console"
    assert (
        _post(client, query, fields, signed_url=f"https://hub.example.com{query}").status_code
        == 200
    )
    assert (
        _post(client, query, fields, signed_url=f"https://hub.example.com{path}").status_code == 401
    )


def test_json_is_415_and_a_form_without_message_sid_is_400(client, tenant_a, sms) -> None:
    path = _path(tenant_a, sms)
    response = client.post(
        path, b"{}", content_type="application/json", HTTP_X_TWILIO_SIGNATURE="x"
    )
    assert response.status_code == 415
    malformed = _post(client, path, {"Body": "hi", "From": "+15555550123"})
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "malformed_body"
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


def test_another_tenants_slug_or_kind_is_the_same_404(client, tenant_a, tenant_b, sms) -> None:
    fields = fixture("twilio_sms_inbound")
    paths = [
        f"/webhooks/{tenant_b.slug}/sms/{sms.channel_token}/",
        f"/webhooks/{tenant_a.slug}/whatsapp/{sms.channel_token}/",
        f"/webhooks/{tenant_a.slug}/sms/not-a-token-000000/",
    ]
    responses = [_post(client, path, fields) for path in paths]
    assert {r.status_code for r in responses} == {404}
    assert len({r.content for r in responses}) == 1
    for info in (tenant_a, tenant_b):
        with info.schema():
            assert InboundEvent.objects.count() == 0


# Inbound messages


def test_sms_is_acknowledged_with_empty_twiml_and_processed_once(client, tenant_a, sms) -> None:
    path = _path(tenant_a, sms)
    for _ in range(3):
        response = _post(client, path, fixture("twilio_sms_inbound"))
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/xml")
        assert response.content == TWIML
    _process_all(tenant_a)
    _process_all(tenant_a)
    with tenant_a.schema():
        event = InboundEvent.objects.get()
        assert (event.provider_event_id, event.status) == (
            "SM00000000000000000000000000000001",
            "processed",
        )
        message = Message.objects.get()
        assert message.content == {"type": "text", "text": "Hello World"}
        assert message.provider_message_id == "SM00000000000000000000000000000001"
        contact = Contact.objects.get()
        assert contact.phone == "+15555550123"
        assert contact.identities.get().external_id == "+15555550123"


def test_mms_becomes_media_with_the_body_as_caption(client, tenant_a, sms) -> None:
    assert _post(client, _path(tenant_a, sms), fixture("twilio_mms_inbound")).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        assert Message.objects.get().content == {
            "type": "image",
            "url": fixture("twilio_mms_inbound")["MediaUrl0"],
            "mime_type": "image/jpeg",
            "caption": "Here is a photo",
        }


def test_each_further_medium_is_a_message_of_its_own(client, tenant_a, sms) -> None:
    fields = fixture("twilio_mms_inbound")
    sid = fields["MessageSid"]
    fields.update(
        NumMedia="3",
        MediaUrl1=f"{fields['MediaUrl0']}1",
        MediaContentType1="video/mp4",
        MediaUrl2=f"{fields['MediaUrl0']}2",
        MediaContentType2="application/pdf",
    )
    assert _post(client, _path(tenant_a, sms), fields).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        messages = list(Message.objects.order_by("seq"))
    assert [(m.provider_message_id, m.content["type"]) for m in messages] == [
        (sid, "image"),
        (f"{sid}:1", "video"),
        (f"{sid}:2", "document"),
    ]
    assert [m.content.get("caption") for m in messages] == ["Here is a photo", None, None]


def test_a_body_too_long_for_a_caption_comes_first_as_text(client, tenant_a, sms) -> None:
    fields = {**fixture("twilio_mms_inbound"), "Body": "x" * 1500}
    assert _post(client, _path(tenant_a, sms), fields).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        contents = [m.content for m in Message.objects.order_by("seq")]
    assert contents[0] == {"type": "text", "text": "x" * 1500}
    assert contents[1]["type"] == "image"
    assert "caption" not in contents[1]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("twilio_whatsapp_inbound", {"type": "text", "text": "Hello World"}),
        (
            "twilio_whatsapp_button",
            {
                "type": "text",
                "text": "Yes",
                "choice": {"id": "answer_yes", "title": "Yes"},
                "reply_to": "SM00000000000000000000000000000007",
            },
        ),
        (
            "twilio_whatsapp_location",
            {
                "type": "location",
                "latitude": 37.4611978,
                "longitude": -122.2164385,
                "name": "Test Place",
                "address": "1 Example Street, Exampleville",
            },
        ),
    ],
)
def test_whatsapp_through_twilio(client, tenant_a, whatsapp, name, expected) -> None:
    response = _post(client, _path(tenant_a, whatsapp), fixture(name))
    assert response.status_code == 200
    assert response.content == TWIML
    _process_all(tenant_a)
    with tenant_a.schema():
        message = Message.objects.get()
        assert message.content == expected
        assert message.provider_message_id == fixture(name)["MessageSid"]
        contact = Contact.objects.get()
        assert (contact.name, contact.phone) == ("Test User", "+15555550123")
        identity = contact.identities.get()
        assert (identity.channel_kind, identity.external_id) == ("whatsapp", "+15555550123")


@pytest.mark.parametrize(
    ("name", "changes", "description"),
    [
        ("twilio_whatsapp_inbound", {"Body": "", "MessageType": "sticker"}, "twilio message"),
        ("twilio_whatsapp_location", {"Latitude": "nan"}, "twilio location"),
    ],
)
def test_what_cannot_be_read_is_kept_as_unsupported(
    client, tenant_a, whatsapp, name, changes, description
) -> None:
    fields = {**fixture(name), **changes}
    assert _post(client, _path(tenant_a, whatsapp), fields).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        content = Message.objects.get().content
    assert (content["type"], content["description"]) == ("unsupported", description)
    assert content["raw"]["From"] == "whatsapp:+15555550123"
    assert content["raw"] == fields


# Status callbacks


def test_statuses_move_forward_only_whatever_their_order(client, tenant_a, sms) -> None:
    with tenant_a.schema():
        message = _outbound(sms, "SM00000000000000000000000000000005")
    path = _path(tenant_a, sms)
    for name in ("twilio_status_delivered", "twilio_status_sent", "twilio_status_queued"):
        assert _post(client, path, fixture(name)).status_code == 200
    # The same callback again is one event.
    assert _post(client, path, fixture("twilio_status_sent")).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        assert sorted(InboundEvent.objects.values_list("provider_event_id", flat=True)) == [
            "SM00000000000000000000000000000005:delivered",
            "SM00000000000000000000000000000005:queued",
            "SM00000000000000000000000000000005:sent",
        ]
        assert set(InboundEvent.objects.values_list("status", flat=True)) == {"processed"}
        assert Message.objects.get(pk=message.pk).status == "delivered"


@pytest.mark.parametrize(
    ("name", "code", "reason"),
    [
        ("twilio_status_undelivered", "30008", "Unknown error."),
        ("twilio_status_failed", "21610", "unsubscribed"),
    ],
)
def test_undelivered_and_failed_keep_the_error_code(
    client, tenant_a, sms, name, code, reason
) -> None:
    with tenant_a.schema():
        message = _outbound(sms, "SM00000000000000000000000000000005")
    assert _post(client, _path(tenant_a, sms), fixture(name)).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        failed = Message.objects.get(pk=message.pk)
    assert (failed.status, failed.error_code) == ("failed", code)
    assert reason in failed.error_message


def test_whatsapp_statuses_reach_read(client, tenant_a, whatsapp) -> None:
    with tenant_a.schema():
        message = _outbound(whatsapp, "SM00000000000000000000000000000007")
    path = _path(tenant_a, whatsapp)
    read = {**fixture("twilio_whatsapp_status_sent"), "SmsStatus": "read", "MessageStatus": "read"}
    assert _post(client, path, read).status_code == 200
    assert _post(client, path, fixture("twilio_whatsapp_status_sent")).status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        assert Message.objects.get(pk=message.pk).status == "read"


# Sending


def _created(request: Any) -> dict[str, Any]:
    form = request.form()
    return {
        **fixture("api_responses/twilio_message_create_success"),
        "sid": f"SM{len(form['Body'][0]) if 'Body' in form else 0:032d}",
    }


def test_sms_is_sent_form_encoded_with_basic_auth_and_a_status_callback(
    client, tenant_a, sms, twilio: FakeProvider
) -> None:
    twilio.default(r"/Messages\.json$", 201, fixture("api_responses/twilio_message_create_success"))
    with tenant_a.schema():
        message = _outbound(sms, "")
        message_deliver(message_id=message.pk)
        sent = Message.objects.get(pk=message.pk)
    assert (sent.status, sent.provider_message_id) == (
        "sent",
        "SM00000000000000000000000000000005",
    )
    request = twilio.requests[0]
    assert request.path == MESSAGES_PATH
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    credentials = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {credentials}"
    callback = f"http://testserver{_path(tenant_a, sms)}"
    assert request.form() == {
        "To": ["+15555550123"],
        "From": ["+15555550100"],
        "Body": ["hi"],
        "StatusCallback": [callback],
    }
    # Twilio's callback to that URL, signed over it, brings the status home.
    response = _post(client, urlsplit(callback).path, fixture("twilio_status_delivered"))
    assert response.status_code == 200
    _process_all(tenant_a)
    with tenant_a.schema():
        assert Message.objects.get(pk=message.pk).status == "delivered"


def test_whatsapp_addresses_are_prefixed_and_buttons_become_numbered_text(
    tenant_a, whatsapp, twilio: FakeProvider
) -> None:
    twilio.default(r"/Messages\.json$", 201, _created)
    with tenant_a.schema():
        conversation = _outbound(whatsapp, "").conversation
        buttons, _ = message_send(
            conversation=conversation,
            content={
                "type": "buttons",
                "text": "Pick one",
                "buttons": [{"id": "y", "title": "Yes"}, {"id": "n", "title": "No"}],
            },
            sender_type="ai",
        )
        message_deliver(message_id=buttons.pk)
        assert Message.objects.get(pk=buttons.pk).status == "sent"
    form = twilio.requests[0].form()
    assert form["To"] == ["whatsapp:+15555550123"]
    assert form["From"] == ["whatsapp:+15555550100"]
    assert form["Body"] == ["Pick one\n\n1. Yes\n2. No"]
    assert form["StatusCallback"] == [f"http://testserver{_path(tenant_a, whatsapp)}"]


def test_media_goes_as_media_url_with_the_caption_as_body(
    tenant_a, sms, twilio: FakeProvider
) -> None:
    twilio.default(r"/Messages\.json$", 201, _created)
    with tenant_a.schema():
        conversation = _outbound(sms, "").conversation
        image, _ = message_send(
            conversation=conversation,
            content={"type": "image", "url": "https://cdn.example.com/a.jpg", "caption": "Look"},
            sender_type="ai",
        )
        message_deliver(message_id=image.pk)
    form = twilio.requests[0].form()
    assert (form["Body"], form["MediaUrl"]) == (["Look"], ["https://cdn.example.com/a.jpg"])


def test_429_is_deferred_with_retry_after_then_succeeds(
    tenant_a, sms, twilio: FakeProvider
) -> None:
    twilio.then(
        r"/Messages\.json$", 429, fixture("api_responses/twilio_error_20429"), Retry_After="5"
    )
    twilio.then(r"/Messages\.json$", 503, {"code": 20500, "message": "Internal Server Error"})
    twilio.default(r"/Messages\.json$", 201, fixture("api_responses/twilio_message_create_success"))
    with tenant_a.schema():
        Channel.objects.filter(pk=sms.pk).update(config={**SMS_CONFIG, "messages_per_second": 100})
        message = _outbound(Channel.objects.get(pk=sms.pk), "")
        with pytest.raises(DeliveryDeferred) as throttled:
            message_deliver(message_id=message.pk)
        assert (throttled.value.code, throttled.value.retry_after) == ("20429", 5)
        with pytest.raises(DeliveryDeferred) as unavailable:
            message_deliver(message_id=message.pk)
        assert unavailable.value.code == "20500"
        assert Message.objects.get(pk=message.pk).status == "pending"
        message_deliver(message_id=message.pk)
        sent = Message.objects.get(pk=message.pk)
    assert (sent.status, sent.provider_message_id) == ("sent", "SM00000000000000000000000000000005")
    assert len(twilio.requests) == 3


@pytest.mark.parametrize(
    ("status", "body", "code", "reason"),
    [
        (400, fixture("api_responses/twilio_error_21211"), "21211", "not a valid phone number"),
        (400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient"}, "21610", ""),
        (401, {"code": 20003, "message": "Authenticate", "status": 401}, "20003", "Authenticate"),
        (
            400,
            {
                "type": "https://www.twilio.com/docs/errors/21614",
                "title": "Not a mobile number",
                "status": 400,
                "code": 21614,
                "detail": "'To' number is not a mobile number",
            },
            "21614",
            "not a mobile number",
        ),
    ],
)
def test_permanent_errors_fail_at_once_with_the_code(
    tenant_a, sms, twilio: FakeProvider, status, body, code, reason
) -> None:
    twilio.then(r"/Messages\.json$", status, body)
    with tenant_a.schema():
        message = _outbound(sms, "")
        message_deliver(message_id=message.pk)
        failed = Message.objects.get(pk=message.pk)
    assert (failed.status, failed.error_code) == ("failed", code)
    assert reason in failed.error_message


def test_one_message_a_second_per_sender_unless_configured(
    tenant_a, sms, twilio: FakeProvider
) -> None:
    twilio.default(r"/Messages\.json$", 201, _created)
    with tenant_a.schema():
        conversation = _outbound(sms, "").conversation
        messages = [
            message_send(
                conversation=conversation,
                content={"type": "text", "text": f"m{i}"},
                sender_type="ai",
            )[0]
            for i in range(3)
        ]
        deferred = []
        for message in messages:
            try:
                message_deliver(message_id=message.pk)
            except DeliveryDeferred as error:
                deferred.append(error)
    assert [(d.code, d.counts_as_attempt) for d in deferred] == [("rate_limited", False)] * 2
    assert len(twilio.requests) == 1
