"""The visitor's HTTP side: sessions, appearance, origins and CORS, uploads, file links, and the
demo page."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import signing
from django.test import Client
from django_tenants.utils import schema_context

from channels_app.models import Channel, ChannelKind
from conversations.models import Attachment, ContactIdentity, Conversation, Participant
from hub.redis import get_redis
from tenants.models import Tenant
from tests.support import error_of
from tests.webchat.conftest import ORIGIN, Chat, chat_create
from webchat.tokens import visitor_token_read

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99"
    b"=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Iterator[None]:
    def clear() -> None:
        redis = get_redis()
        for key in redis.scan_iter("hub:throttle:webchat-*"):
            redis.delete(key)

    clear()
    yield
    clear()


def _session(chat: Chat, client: Client | None = None, **body: Any) -> dict:
    response = chat.session(client or Client(), **body)
    assert response.status_code == 200, response.content
    return response.json()


def test_a_session_binds_a_signed_token_to_a_new_visitor_and_conversation(chat_a: Chat) -> None:
    response = chat_a.session(Client(), language="de")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "visitor_token",
        "conversation_id",
        "ws_url",
        "expires_in",
        "title",
        "color",
    }
    assert body["ws_url"] == f"/ws/webchat/?token={body['visitor_token']}"
    assert (body["title"], body["color"]) == ("Talk to Acme", "#0f766e")
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in response["Vary"]
    claims = visitor_token_read(body["visitor_token"])
    assert claims is not None
    assert (claims.schema, claims.channel_id) == (chat_a.slug, chat_a.channel_id)
    assert str(claims.conversation_id) == body["conversation_id"]
    with schema_context(chat_a.slug):
        conversation = Conversation.objects.select_related("contact").get(
            pk=body["conversation_id"]
        )
        assert conversation.channel_id == chat_a.channel_id
        assert conversation.contact.language == "de"
        assert conversation.contact.name.startswith("Visitor ")
        identity = ContactIdentity.objects.get(contact=conversation.contact)
        assert (identity.channel_kind, identity.external_id) == ("webchat", claims.visitor_id)
        assert Participant.objects.filter(
            conversation=conversation, contact=conversation.contact, role="customer"
        ).exists()


def test_a_returning_visitor_keeps_its_contact_and_conversation(chat_a: Chat) -> None:
    first = _session(chat_a)
    again = _session(chat_a, visitor_token=first["visitor_token"])
    assert again["conversation_id"] == first["conversation_id"]
    assert visitor_token_read(again["visitor_token"]) == visitor_token_read(first["visitor_token"])
    with schema_context(chat_a.slug):
        assert Conversation.objects.filter(channel_id=chat_a.channel_id).count() == 1


def _expired_token(token: str) -> str:
    data = signing.loads(token, salt="hub.webchat.visitor")
    signer = signing.TimestampSigner(salt="hub.webchat.visitor")
    signer.timestamp = lambda: signing.b62_encode(int(time.time()) - 31 * 24 * 3600)  # type: ignore[method-assign]
    return signer.sign_object(data, compress=True)


def test_a_forged_expired_or_foreign_token_starts_a_new_visitor(chat_a: Chat, tenant_b) -> None:
    first = _session(chat_a)
    other_channel = chat_create(chat_a.slug)
    foreign_tenant = chat_create(tenant_b.slug)
    token = first["visitor_token"]
    candidates = {
        "forged": token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"),
        "expired": _expired_token(token),
        "other channel": _session(other_channel)["visitor_token"],
        "other tenant": _session(foreign_tenant)["visitor_token"],
    }
    for what, candidate in candidates.items():
        body = _session(chat_a, visitor_token=candidate)
        assert body["conversation_id"] != first["conversation_id"], what
    with schema_context(chat_a.slug):
        assert Conversation.objects.filter(channel_id=chat_a.channel_id).count() == 5


def test_an_erased_visitor_starts_over(chat_a: Chat) -> None:
    from conversations.services.contacts import contact_erase

    first = _session(chat_a)
    with schema_context(chat_a.slug):
        contact = Conversation.objects.get(pk=first["conversation_id"]).contact
        contact_erase(contact=contact)
    again = _session(chat_a, visitor_token=first["visitor_token"])
    assert again["conversation_id"] != first["conversation_id"]


@pytest.mark.parametrize("origin", [None, "https://evil.example", "http://shop.example.com"])
def test_origins_outside_the_channels_list_are_refused(chat_a: Chat, origin: str | None) -> None:
    response = chat_a.session(Client(), origin=origin)
    assert response.status_code == 403
    assert error_of(response)["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in response
    with schema_context(chat_a.slug):
        assert not Conversation.objects.filter(channel_id=chat_a.channel_id).exists()


def test_the_preflight_answers_allowed_origins_only(chat_a: Chat) -> None:
    client = Client()
    allowed = client.options(
        f"{chat_a.base}/session/",
        HTTP_ORIGIN=ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )
    assert allowed.status_code == 204
    assert allowed["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in allowed["Access-Control-Allow-Methods"]
    assert "Content-Type" in allowed["Access-Control-Allow-Headers"]
    refused = client.options(f"{chat_a.base}/session/", HTTP_ORIGIN="https://evil.example")
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused


def test_unknown_tenant_token_kind_or_disabled_channel_is_one_404(chat_a: Chat, tenant_b) -> None:
    with schema_context(chat_a.slug):
        telegram = Channel.objects.create(
            kind=ChannelKind.TELEGRAM,
            name="Bot",
            config={"bot_token": "123456:" + "A" * 30, "secret_token": "s"},
        )
        disabled = Channel.objects.create(
            kind=ChannelKind.WEBCHAT,
            name="Off",
            enabled=False,
            config={"allowed_origins": [ORIGIN]},
        )
    paths = [
        f"/webchat/no_such_tenant/{chat_a.channel_token}/session/",
        f"/webchat/{chat_a.slug}/{'x' * 32}/session/",
        f"/webchat/{chat_a.slug}/{telegram.channel_token}/session/",
        f"/webchat/{chat_a.slug}/{disabled.channel_token}/session/",
        # Tenant A's channel token under tenant B's slug.
        f"/webchat/{tenant_b.slug}/{chat_a.channel_token}/session/",
    ]
    bodies = set()
    for path in paths:
        response = Client().post(path, "{}", content_type="application/json", HTTP_ORIGIN=ORIGIN)
        assert response.status_code == 404, path
        bodies.add(response.content)
    assert len(bodies) == 1
    assert error_of(response)["code"] == "not_found"


def test_a_suspended_tenants_chat_is_refused(chat_a: Chat) -> None:
    Tenant.objects.filter(schema_name=chat_a.slug).update(is_active=False)
    response = chat_a.session(Client())
    assert response.status_code == 403
    assert error_of(response)["code"] == "tenant_suspended"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"visitor": "x"}, "visitor"), ({"language": "not a language"}, "language")],
)
def test_an_invalid_session_body_is_a_400_naming_the_field(chat_a: Chat, body, field) -> None:
    response = chat_a.session(Client(), **body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert field in error["details"]


def test_sessions_are_rate_limited_per_address(chat_a: Chat, settings) -> None:
    settings.HUB_WEBCHAT_SESSIONS_PER_MINUTE = 2
    client = Client(REMOTE_ADDR="203.0.113.9")
    assert [chat_a.session(client).status_code for _ in range(2)] == [200, 200]
    limited = chat_a.session(client)
    assert limited.status_code == 429
    assert error_of(limited)["code"] == "rate_limited"
    assert int(limited["Retry-After"]) >= 1
    # Another address is not affected.
    assert chat_a.session(Client(REMOTE_ADDR="203.0.113.10")).status_code == 200


def test_the_appearance_is_public_to_allowed_origins_and_creates_nothing(chat_a: Chat) -> None:
    response = Client().get(f"{chat_a.base}/config/", HTTP_ORIGIN=ORIGIN)
    assert response.status_code == 200
    assert response.json() == {"title": "Talk to Acme", "color": "#0f766e"}
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert (
        Client().get(f"{chat_a.base}/config/", HTTP_ORIGIN="https://x.example").status_code == 403
    )
    # Browsers send no Origin on a same-origin GET (the hub's own demo page).
    same_origin = Client().get(f"{chat_a.base}/config/")
    assert same_origin.status_code == 200
    assert "Access-Control-Allow-Origin" not in same_origin
    with schema_context(chat_a.slug):
        assert not Conversation.objects.filter(channel_id=chat_a.channel_id).exists()


# --- Uploads and file links ------------------------------------------------------------------


def _upload(chat: Chat, token: str | None, data: bytes, name: str = "photo.png") -> Any:
    file = io.BytesIO(data)
    file.name = name
    headers: dict[str, Any] = {"HTTP_ORIGIN": ORIGIN}
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return Client().post(f"{chat.base}/attachments/", {"file": file}, **headers)


def test_a_visitor_uploads_an_image_served_by_its_signed_link(chat_a: Chat) -> None:
    session = _session(chat_a)
    response = _upload(chat_a, session["visitor_token"], PNG, name="../../evil name.png")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["content_type"] == "image/png"
    assert body["filename"] == "evil_name.png"
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    with schema_context(chat_a.slug):
        attachment = Attachment.objects.get(pk=body["id"])
        assert str(attachment.conversation_id) == session["conversation_id"]
        assert attachment.message_id is None
    served = Client().get(body["url"])
    assert served.status_code == 200
    assert served["Content-Type"] == "image/png"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served["Content-Security-Policy"]
    assert b"".join(served.streaming_content) == PNG  # type: ignore[attr-defined]
    with schema_context(chat_a.slug):
        attachment.file.delete(save=False)


def test_what_is_not_an_image_is_refused_whatever_it_claims(chat_a: Chat) -> None:
    session = _session(chat_a)
    response = _upload(chat_a, session["visitor_token"], b"<html><script>alert(1)</script>")
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"
    with schema_context(chat_a.slug):
        assert not Attachment.objects.exists()


def test_an_image_over_the_limit_is_a_413(chat_a: Chat, settings) -> None:
    settings.HUB_ATTACHMENT_MAX_BYTES = 32
    session = _session(chat_a)
    response = _upload(chat_a, session["visitor_token"], PNG)
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_an_upload_needs_this_chats_visitor_token(chat_a: Chat, tenant_b) -> None:
    foreign = _session(chat_create(tenant_b.slug))["visitor_token"]
    for token in (None, "nonsense", foreign):
        response = _upload(chat_a, token, PNG)
        assert response.status_code == 401, token
        assert error_of(response)["code"] == "invalid_token"


def test_a_tampered_or_foreign_file_link_is_not_found(chat_a: Chat, tenant_b) -> None:
    session = _session(chat_a)
    url = _upload(chat_a, session["visitor_token"], PNG).json()["url"]
    assert Client().get(url[:-4] + "xx/").status_code == 404
    assert Client().get(url.replace(chat_a.slug, tenant_b.slug, 1)).status_code == 404
    with schema_context(chat_a.slug):
        for attachment in Attachment.objects.all():
            attachment.file.delete(save=False)


# --- The demo page --------------------------------------------------------------------------


def test_the_demo_page_embeds_the_tenants_web_chat(chat_a: Chat) -> None:
    response = Client().get(f"/t/{chat_a.slug}/chat-demo/")
    assert response.status_code == 200
    html = response.content.decode()
    assert (
        f'<script src="http://testserver/static/hub/widget.js" data-tenant="{chat_a.slug}" '
        f'data-channel="{chat_a.channel_token}"' in html
    )
    # The hub's own origin is not in this channel's list: the page says why the chat refuses.
    assert "allowed_origins" in html
    assert 'role="alert"' in html


def test_the_demo_page_without_a_web_chat_says_so(tenant_b) -> None:
    with schema_context(tenant_b.slug):
        Channel.objects.filter(kind=ChannelKind.WEBCHAT).update(enabled=False)
    response = Client().get(f"/t/{tenant_b.slug}/chat-demo/")
    assert response.status_code == 404
    assert b"No web chat yet" in response.content


def test_the_openapi_schema_documents_the_visitor_endpoints() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator(urlconf="hub.urls").get_schema(request=None, public=True)
    paths = json.dumps(sorted(schema["paths"]))
    assert "/webchat/{slug}/{channel_token}/session/" in paths
    assert "/webchat/{slug}/{channel_token}/attachments/" in paths
