"""Inbound media fetched from each provider into storage: real payloads replayed through the
durable inbox, fake provider APIs and file servers on 127.0.0.1, files in a temporary
MEDIA_ROOT (the worker test's in var/media, removed after)."""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from channels_app.inbound import inbound_event_process, inbound_event_record
from channels_app.media import (
    MAX_ATTEMPTS,
    MediaFetchDeferred,
    media_fetch,
    media_fetch_enqueue,
)
from channels_app.models import Channel, ChannelKind, InboundEvent
from channels_app.tasks import media_fetch_task
from conversations.models import Attachment, Contact, Conversation, Message, Participant
from hub import events
from tests import support
from tests.channels.helpers import fixture, meta_signature
from tests.fakes import FakeProvider, fake_provider

JPEG = b"\xff\xd8\xff\xe0" + os.urandom(3000)
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(2000)

WHATSAPP = {
    "phone_number_id": "100000000000002",
    "access_token": "EAAG-media-token",
    "app_secret": "s",
    "verify_token": "v",
}
WA_MEDIA_ID = "1000000000000101"
TELEGRAM = {"bot_token": "123456:ABC-media", "secret_token": "telegram-secret"}
SLACK = {"bot_token": "xoxb-media-token", "signing_secret": "s"}
MESSENGER = {
    "page_id": "100000000000010",
    "access_token": "EAAG-page",
    "app_secret": "s",
    "verify_token": "v",
}
INSTAGRAM = {
    "instagram_account_id": "17800000000000001",
    "access_token": "IGAA-page",
    "app_secret": "s",
    "verify_token": "v",
}
TWILIO_ACCOUNT = "AC0000000000000000000000000000000a"
TWILIO = {
    "provider": "twilio",
    "account_sid": TWILIO_ACCOUNT,
    "auth_token": "twilio-auth-token",
    "from_number": "+15555550100",
}


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with fake_provider() as server:
        yield server


def _files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def _replay(
    channel: Channel, body: bytes, *, content_type: str = "application/json"
) -> list[Message]:
    """The event through the durable inbox, as the webhook and the worker would; returns the
    media messages it made."""
    event, _ = inbound_event_record(
        channel=channel,
        provider_event_id=f"event:{len(InboundEvent.objects.all())}",
        body=body,
        content_type=content_type,
    )
    inbound_event_process(event_id=event.pk)
    return [
        message
        for message in Message.objects.filter(channel=channel).order_by("seq")
        if message.content["type"] in {"image", "audio", "video", "document"}
    ]


def _enqueued(callbacks: list[Any]) -> list[str]:
    return [
        str(callback.keywords["message_id"])
        for callback in callbacks
        if isinstance(callback, functools.partial) and callback.func is media_fetch_enqueue
    ]


def _whatsapp_image(channel: Channel, django_capture_on_commit_callbacks) -> Message:
    body = json.dumps(fixture("whatsapp_image")).encode()
    with django_capture_on_commit_callbacks() as callbacks:
        (message,) = _replay(channel, body)
    # Enqueued once the event's transaction commits, never before.
    assert _enqueued(callbacks) == [str(message.pk)]
    return message


def _graph_media(fake: FakeProvider, **overrides: Any) -> None:
    """`GET /{media-id}` as the Cloud API answers it, pointing at the fake's file server."""
    answer = {
        "messaging_product": "whatsapp",
        "url": f"{fake.url}/whatsapp_business/attachments/?mid={WA_MEDIA_ID}&ext=1&hash=ATfake",
        "mime_type": "image/jpeg",
        "sha256": "fake",
        "file_size": str(len(JPEG)),
        "id": WA_MEDIA_ID,
        **overrides,
    }
    fake.default(rf"^/{WA_MEDIA_ID}\?", 200, answer)


def _stored(message: Message) -> Attachment:
    message.refresh_from_db()
    attachment = Attachment.objects.get(message=message)
    assert message.content["attachment_id"] == str(attachment.pk)
    assert "media_error" not in message.content
    return attachment


def test_whatsapp_media_id_to_url_to_file_with_the_token(
    tenant_a, fake, settings, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    settings.HUB_META_GRAPH_URL = fake.url
    _graph_media(fake)
    fake.default(r"^/whatsapp_business/attachments/", 200, JPEG, **{"Content-Type": "image/jpeg"})
    published: list[tuple[str, str, dict[str, Any]]] = []
    monkeypatch.setattr(events, "_subscribers", [lambda *event: published.append(event)])
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.WHATSAPP, name="WA", config=WHATSAPP)
        message = _whatsapp_image(channel, django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=True):
            media_fetch(message_id=message.pk)
        attachment = _stored(message)
        assert message.content["media_id"] == WA_MEDIA_ID
        assert message.content["mime_type"] == "image/jpeg"
        with attachment.file.open("rb") as handle:
            assert handle.read() == JPEG
        assert (attachment.content_type, attachment.size) == ("image/jpeg", len(JPEG))
        assert str(attachment.file.name).startswith(f"attachments/{tenant_a.slug}/")
    lookup, download = fake.requests
    assert lookup.path == f"/{WA_MEDIA_ID}?phone_number_id={WHATSAPP['phone_number_id']}"
    for request in (lookup, download):
        assert request.headers["authorization"] == "Bearer EAAG-media-token"
    assert download.path.startswith("/whatsapp_business/attachments/?mid=")
    ((schema, name, payload),) = published
    assert (schema, name) == (tenant_a.slug, "message.updated")
    assert payload["content"]["attachment_id"] == str(attachment.pk)
    assert [a["id"] for a in payload["attachments"]] == [str(attachment.pk)]


def test_run_twice_stores_one_file_and_asks_once(
    tenant_a, fake, settings, django_capture_on_commit_callbacks
) -> None:
    settings.HUB_META_GRAPH_URL = fake.url
    _graph_media(fake)
    fake.default(r"^/whatsapp_business/attachments/", 200, JPEG, **{"Content-Type": "image/jpeg"})
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.WHATSAPP, name="WA", config=WHATSAPP)
        message = _whatsapp_image(channel, django_capture_on_commit_callbacks)
        media_fetch(message_id=message.pk)
        media_fetch(message_id=message.pk)
        media_fetch_task.apply(args=[str(message.pk)])
        _stored(message)
        assert Attachment.objects.count() == 1
    assert len(_files(settings)) == 1
    assert len(fake.requests) == 2


def test_over_the_cap_nothing_is_stored_and_the_message_says_so(
    tenant_a, fake, settings, django_capture_on_commit_callbacks
) -> None:
    settings.HUB_META_GRAPH_URL = fake.url
    settings.HUB_MEDIA_MAX_BYTES = 1024
    # The Graph API states no size: the file server's own length is what stops it.
    _graph_media(fake, file_size=None)
    fake.default(r"^/whatsapp_business/attachments/", 200, JPEG, **{"Content-Type": "image/jpeg"})
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.WHATSAPP, name="WA", config=WHATSAPP)
        message = _whatsapp_image(channel, django_capture_on_commit_callbacks)
        media_fetch(message_id=message.pk)
        message.refresh_from_db()
        assert message.content["media_id"] == WA_MEDIA_ID
        assert "attachment_id" not in message.content
        assert message.content["media_error"]["code"] == "too_large"
        assert "1024 bytes" in message.content["media_error"]["message"]
        assert not Attachment.objects.exists()
        # Recorded once: a rerun asks the provider nothing.
        asked = len(fake.requests)
        media_fetch(message_id=message.pk)
        assert len(fake.requests) == asked
    assert _files(settings) == []


def test_a_size_the_graph_api_states_over_the_cap_is_not_downloaded(
    tenant_a, fake, settings, django_capture_on_commit_callbacks
) -> None:
    settings.HUB_META_GRAPH_URL = fake.url
    settings.HUB_MEDIA_MAX_BYTES = 1024
    _graph_media(fake, file_size="52428800")
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.WHATSAPP, name="WA", config=WHATSAPP)
        message = _whatsapp_image(channel, django_capture_on_commit_callbacks)
        media_fetch(message_id=message.pk)
        message.refresh_from_db()
        assert message.content["media_error"]["code"] == "too_large"
    assert fake.paths() == [f"/{WA_MEDIA_ID}?phone_number_id={WHATSAPP['phone_number_id']}"]


class _EndlessFile(BaseHTTPRequestHandler):
    """A CDN answering without a Content-Length and never ending the body: only the reader's
    cap stops the download. Counts what it managed to send before the reader hung up."""

    protocol_version = "HTTP/1.0"
    sent = 0
    CHUNK = b"\0" * 16384
    LIMIT = 64 * 1024 * 1024

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        try:
            while type(self).sent < self.LIMIT:
                self.wfile.write(self.CHUNK)
                type(self).sent += len(self.CHUNK)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_body_of_unknown_length_is_cut_at_the_cap(
    tenant_a, settings, django_capture_on_commit_callbacks
) -> None:
    settings.HUB_MEDIA_MAX_BYTES = 100_000
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EndlessFile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        payload = fixture("messenger_image")
        attachment = payload["entry"][0]["messaging"][0]["message"]["attachments"][0]
        attachment["payload"]["url"] = f"http://127.0.0.1:{server.server_address[1]}/v/t1/x.png"
        with tenant_a.schema():
            channel = Channel.objects.create(
                kind=ChannelKind.MESSENGER, name="Page", config=MESSENGER
            )
            (message,) = _replay(channel, json.dumps(payload).encode())
            media_fetch(message_id=message.pk)
            message.refresh_from_db()
            assert message.content["media_error"]["code"] == "too_large"
            assert not Attachment.objects.exists()
        support.wait_until(lambda: _EndlessFile.sent, timeout=5, what="the server to send")
    finally:
        server.shutdown()
        server.server_close()
    # The reader hung up long before the end (socket buffers hold a few MiB at most).
    assert _EndlessFile.sent < _EndlessFile.LIMIT // 2
    assert _files(settings) == []


@pytest.mark.parametrize(
    ("where", "status", "body", "code"),
    [
        (
            "lookup",
            401,
            {
                "error": {
                    "message": "Error validating access token",
                    "type": "OAuthException",
                    "code": 190,
                }
            },
            "190",
        ),
        (
            "lookup",
            400,
            {
                "error": {
                    "message": "Unsupported get request.",
                    "type": "GraphMethodException",
                    "code": 100,
                }
            },
            "100",
        ),
        ("download", 404, b"Not Found", "404"),
    ],
)
def test_permanent_refusals_are_recorded_without_a_file(
    tenant_a, fake, settings, django_capture_on_commit_callbacks, where, status, body, code
) -> None:
    settings.HUB_META_GRAPH_URL = fake.url
    if where == "lookup":
        fake.default(rf"^/{WA_MEDIA_ID}\?", status, body)
    else:
        _graph_media(fake)
        fake.default(r"^/whatsapp_business/attachments/", status, body)
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.WHATSAPP, name="WA", config=WHATSAPP)
        message = _whatsapp_image(channel, django_capture_on_commit_callbacks)
        media_fetch(message_id=message.pk)
        message.refresh_from_db()
        assert message.content["media_error"]["code"] == code
        assert message.content["media_error"]["message"]
        assert message.content["media_id"] == WA_MEDIA_ID
        assert message.status == "received"
        assert not Attachment.objects.exists()
    assert _files(settings) == []


def test_server_trouble_is_deferred_then_given_up_after_the_last_attempt(
    tenant_a, fake, settings, django_capture_on_commit_callbacks
) -> None:
    settings.HUB_META_GRAPH_URL = fake.url
    _graph_media(fake)
    fake.default(r"^/whatsapp_business/attachments/", 503, b"busy", Retry_After="7")
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.WHATSAPP, name="WA", config=WHATSAPP)
        message = _whatsapp_image(channel, django_capture_on_commit_callbacks)
        with pytest.raises(MediaFetchDeferred) as deferred:
            media_fetch(message_id=message.pk)
        assert (deferred.value.code, deferred.value.retry_after) == ("503", 7.0)
        message.refresh_from_db()
        assert "media_error" not in message.content
        assert "attachment_id" not in message.content
        # The task's last attempt records the failure instead of scheduling another.
        media_fetch_task.apply(args=[str(message.pk)], kwargs={"attempt": MAX_ATTEMPTS - 1})
        message.refresh_from_db()
        assert message.content["media_error"]["code"] == "503"
        assert f"gave up after {MAX_ATTEMPTS} attempts" in message.content["media_error"]["message"]
        assert not Attachment.objects.exists()


def test_telegram_get_file_then_the_file_path(tenant_a, fake, settings) -> None:
    settings.HUB_TELEGRAM_API_URL = fake.url
    token = TELEGRAM["bot_token"]
    fake.default(
        rf"^/bot{re.escape(token)}/getFile$",
        200,
        {
            "ok": True,
            "result": {
                "file_id": "AgACAgFAKEPHOTOFILEID0004",
                "file_unique_id": "AQADFAKE0004",
                "file_size": len(JPEG),
                "file_path": "photos/file_7.jpg",
            },
        },
    )
    fake.default(
        rf"^/file/bot{re.escape(token)}/photos/file_7\.jpg$",
        200,
        JPEG,
        **{"Content-Type": "application/octet-stream"},
    )
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.TELEGRAM, name="Bot", config=TELEGRAM)
        (message,) = _replay(channel, json.dumps(fixture("telegram_photo")).encode())
        media_fetch(message_id=message.pk)
        attachment = _stored(message)
        # Telegram serves octet-stream; the file's name tells what it is.
        assert (attachment.filename, attachment.content_type) == ("file_7.jpg", "image/jpeg")
        assert message.content["caption"] == "Photo Caption"
    assert fake.requests[0].json() == {"file_id": "AgACAgFAKEPHOTOFILEID0004"}


def test_telegram_files_over_the_bot_api_limit_are_marked_too_large(
    tenant_a, fake, settings
) -> None:
    settings.HUB_TELEGRAM_API_URL = fake.url
    fake.default(
        r"/getFile$",
        400,
        {"ok": False, "error_code": 400, "description": "Bad Request: file is too big"},
    )
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.TELEGRAM, name="Bot", config=TELEGRAM)
        (message,) = _replay(channel, json.dumps(fixture("telegram_photo")).encode())
        media_fetch(message_id=message.pk)
        message.refresh_from_db()
        assert message.content["media_error"]["code"] == "too_large"
        assert not Attachment.objects.exists()


@pytest.mark.parametrize(
    ("kind", "config", "name"),
    [
        (ChannelKind.MESSENGER, MESSENGER, "messenger_image"),
        (ChannelKind.INSTAGRAM, INSTAGRAM, "instagram_image"),
    ],
)
def test_meta_cdn_urls_are_fetched_without_a_token(
    tenant_a, fake, settings, kind, config, name
) -> None:
    payload = fixture(name)
    attachment = payload["entry"][0]["messaging"][0]["message"]["attachments"][0]
    attachment["payload"]["url"] = f"{fake.url}/v/t1.15752-9/fake-image.png?_nc_oh=x&oe=65D"
    fake.default(r"^/v/", 200, PNG, **{"Content-Type": "image/png"})
    with tenant_a.schema():
        channel = Channel.objects.create(kind=kind, name="Page", config=config)
        (message,) = _replay(channel, json.dumps(payload).encode())
        media_fetch(message_id=message.pk)
        attachment_row = _stored(message)
        assert (attachment_row.filename, attachment_row.content_type) == (
            "fake-image.png",
            "image/png",
        )
    (request,) = fake.requests
    assert "authorization" not in request.headers
    assert config["access_token"] not in request.path


def test_an_expired_cdn_url_is_recorded(tenant_a, fake, settings) -> None:
    payload = fixture("messenger_image")
    attachment = payload["entry"][0]["messaging"][0]["message"]["attachments"][0]
    attachment["payload"]["url"] = f"{fake.url}/v/expired.png"
    fake.default(r"^/v/", 403, b"URL signature expired", **{"Content-Type": "text/plain"})
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.MESSENGER, name="Page", config=MESSENGER)
        (message,) = _replay(channel, json.dumps(payload).encode())
        media_fetch(message_id=message.pk)
        message.refresh_from_db()
        assert message.content["media_error"]["code"] == "403"
        assert message.content["url"].endswith("/v/expired.png")


def _slack_file_share(fake: FakeProvider, *, host: str | None = None) -> bytes:
    payload = fixture("slack_message_file_share")
    file = payload["event"]["files"][0]
    file["url_private"] = file["url_private"].replace("https://files.slack.com", host or fake.url)
    return json.dumps(payload).encode()


def test_slack_url_private_with_the_bot_token(tenant_a, fake, settings) -> None:
    settings.HUB_SLACK_API_URL = f"{fake.url}/api"
    fake.default(r"^/files-pri/", 200, PNG, **{"Content-Type": "image/png"})
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.SLACK, name="Slack", config=SLACK)
        (message,) = _replay(channel, _slack_file_share(fake))
        media_fetch(message_id=message.pk)
        attachment = _stored(message)
        assert (attachment.filename, attachment.content_type) == ("file.png", "image/png")
        assert message.content["media_id"] == "F111"
    (request,) = fake.requests
    assert request.path == "/files-pri/T111-F111/file.png"
    assert request.headers["authorization"] == "Bearer xoxb-media-token"


def test_slack_sign_in_page_is_a_refusal_not_a_file(tenant_a, fake, settings) -> None:
    settings.HUB_SLACK_API_URL = f"{fake.url}/api"
    fake.default(
        r"^/files-pri/", 200, b"<html>Sign in to Slack</html>", **{"Content-Type": "text/html"}
    )
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.SLACK, name="Slack", config=SLACK)
        (message,) = _replay(channel, _slack_file_share(fake))
        media_fetch(message_id=message.pk)
        message.refresh_from_db()
        assert message.content["media_error"]["code"] == "not_authorized"
        assert not Attachment.objects.exists()


def test_the_slack_token_never_goes_to_another_host(tenant_a, fake, settings) -> None:
    settings.HUB_SLACK_API_URL = "https://slack.com/api"
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.SLACK, name="Slack", config=SLACK)
        (message,) = _replay(channel, _slack_file_share(fake))
        media_fetch(message_id=message.pk)
        message.refresh_from_db()
        assert message.content["media_error"]["code"] == "untrusted_url"
    assert fake.requests == []


def _twilio_mms(url: str) -> bytes:
    form = dict(fixture("twilio_mms_inbound"))
    form["MediaUrl0"] = url
    return urlencode(form).encode()


def test_twilio_media_url_with_basic_auth_then_the_redirect_without(
    tenant_a, fake, settings
) -> None:
    settings.HUB_TWILIO_API_URL = fake.url
    media_path = f"/2010-04-01/Accounts/{TWILIO_ACCOUNT}/Messages/MM02/Media/ME03"
    with fake_provider() as storage:
        storage.default(r"^/media/", 200, JPEG, **{"Content-Type": "image/jpeg"})
        fake.default(
            rf"^{media_path}$", 307, b"", Location=f"{storage.url}/media/ME03?X-Amz-Signature=x"
        )
        with tenant_a.schema():
            channel = Channel.objects.create(kind=ChannelKind.SMS, name="SMS", config=TWILIO)
            (message,) = _replay(
                channel,
                _twilio_mms(f"{fake.url}{media_path}"),
                content_type="application/x-www-form-urlencoded",
            )
            media_fetch(message_id=message.pk)
            attachment = _stored(message)
            assert attachment.content_type == "image/jpeg"
            assert message.content["caption"] == "Here is a photo"
        (to_twilio,) = fake.requests
        credentials = base64.b64encode(f"{TWILIO_ACCOUNT}:twilio-auth-token".encode()).decode()
        assert to_twilio.headers["authorization"] == f"Basic {credentials}"
        (to_storage,) = storage.requests
        assert "authorization" not in to_storage.headers


def test_twilio_credentials_only_go_to_twilio(tenant_a, fake, settings) -> None:
    settings.HUB_TWILIO_API_URL = "https://api.twilio.com"
    fake.default(r"^/elsewhere", 200, JPEG, **{"Content-Type": "image/jpeg"})
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.SMS, name="SMS", config=TWILIO)
        (message,) = _replay(
            channel,
            _twilio_mms(f"{fake.url}/elsewhere/ME03"),
            content_type="application/x-www-form-urlencoded",
        )
        media_fetch(message_id=message.pk)
        _stored(message)
    assert "authorization" not in fake.requests[0].headers


def test_signal_attachment_from_the_rest_api(tenant_a, fake, settings) -> None:
    fake.default(
        r"^/v1/attachments/FAKEATTACHMENTID0001\.jpg$",
        200,
        JPEG,
        **{"Content-Type": "application/octet-stream"},
    )
    config = {"api_url": fake.url, "number": "+15555550100", "accept_webhook": True}
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.SIGNAL, name="Signal", config=config)
        body = json.dumps(fixture("signal_jsonrpc_receive_group_attachment")).encode()
        (message,) = _replay(channel, body)
        media_fetch(message_id=message.pk)
        attachment = _stored(message)
        assert (attachment.filename, attachment.content_type) == ("IMG_0001.jpg", "image/jpeg")


def test_signal_attachment_gone_from_the_rest_api(tenant_a, fake, settings) -> None:
    fake.default(r"^/v1/attachments/", 404, {"error": "attachment not found"})
    config = {"api_url": fake.url, "number": "+15555550100", "accept_webhook": True}
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.SIGNAL, name="Signal", config=config)
        body = json.dumps(fixture("signal_jsonrpc_receive_group_attachment")).encode()
        (message,) = _replay(channel, body)
        media_fetch(message_id=message.pk)
        message.refresh_from_db()
        assert message.content["media_error"]["code"] == "404"
        assert not Attachment.objects.exists()


def test_another_tenants_task_finds_nothing(tenant_a, tenant_b, fake, settings) -> None:
    settings.HUB_META_GRAPH_URL = fake.url
    _graph_media(fake)
    with tenant_a.schema():
        channel = Channel.objects.create(kind=ChannelKind.WHATSAPP, name="WA", config=WHATSAPP)
        (message,) = _replay(channel, json.dumps(fixture("whatsapp_image")).encode())
    with tenant_b.schema():
        assert media_fetch(message_id=message.pk) is None
    assert fake.requests == []
    with tenant_a.schema():
        message.refresh_from_db()
        assert "attachment_id" not in message.content


# --- With committed rows: a real worker, and two runs at once ------------------------------


def _cleanup(slug: str) -> None:
    with schema_context(slug):
        for attachment in Attachment.objects.all():
            attachment.file.delete(save=False)
        Attachment.objects.all().delete()
        Conversation.objects.update(last_message=None)
        Message.objects.all().delete()
        Participant.objects.all().delete()
        Conversation.objects.all().delete()
        Contact.objects.all().delete()
        InboundEvent.objects.all().delete()
        Channel.objects.all().delete()


def test_a_real_worker_fetches_after_the_webhook_retrying_server_trouble(
    committed_db, fake, settings, tmp_path, monkeypatch
) -> None:
    """Webhook → inbound task → media task (enqueued after commit) → a 503 retried with backoff
    → the file stored in tenant A's schema and storage, all in a real Celery worker."""
    slug = committed_db["a"].slug
    monkeypatch.setenv("HUB_META_GRAPH_URL", fake.url)
    # The worker's var/ (so its MEDIA_ROOT) is this test's; the keys stay the suite's, so it
    # reads the channel's encrypted config.
    monkeypatch.setenv("HUB_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("HUB_FIELD_KEYS", ",".join(settings.HUB_FIELD_KEYS))
    monkeypatch.setenv("HUB_SECRET_KEY", settings.SECRET_KEY)
    settings.MEDIA_ROOT = tmp_path / "var" / "media"
    _graph_media(fake)
    fake.then(rf"^/{WA_MEDIA_ID}\?", 503, {"error": {"message": "busy", "code": 2}})
    fake.default(r"^/whatsapp_business/attachments/", 200, JPEG, **{"Content-Type": "image/jpeg"})
    with schema_context(slug):
        channel = Channel.objects.create(kind=ChannelKind.WHATSAPP, name="WA", config=WHATSAPP)
    try:
        with support.celery_worker(tmp_path) as worker:
            body = json.dumps(fixture("whatsapp_image")).encode()
            response = Client().post(
                f"/webhooks/{slug}/whatsapp/{channel.channel_token}/",
                body,
                content_type="application/json",
                HTTP_X_HUB_SIGNATURE_256=meta_signature(body, WHATSAPP["app_secret"]),
            )
            assert response.status_code == 200

            def stored() -> Attachment | None:
                with schema_context(slug):
                    return Attachment.objects.filter(message__channel=channel).first()

            attachment = support.wait_until(stored, timeout=60, what="the media to be stored")
            assert "channels.media_fetch" in worker.log()
        with schema_context(slug):
            message = Message.objects.get(channel=channel)
            assert message.content["attachment_id"] == str(attachment.pk)
            assert attachment.file.name.startswith(f"attachments/{slug}/")
            with attachment.file.open("rb") as handle:
                assert handle.read() == JPEG
        lookups = [path for path in fake.paths() if path.startswith(f"/{WA_MEDIA_ID}")]
        assert len(lookups) == 2  # the 503, then the retry
    finally:
        _cleanup(slug)


def test_two_runs_at_once_store_one_file(committed_db, fake, settings) -> None:
    slug = committed_db["a"].slug
    settings.HUB_META_GRAPH_URL = fake.url
    _graph_media(fake)
    arrived = threading.Barrier(2, timeout=10)

    def slow_file(_request: Any) -> bytes:
        arrived.wait()  # both runs are downloading before either stores
        return JPEG

    fake.default(
        r"^/whatsapp_business/attachments/", 200, slow_file, **{"Content-Type": "image/jpeg"}
    )
    with schema_context(slug):
        channel = Channel.objects.create(kind=ChannelKind.WHATSAPP, name="WA", config=WHATSAPP)
        (message,) = _replay(channel, json.dumps(fixture("whatsapp_image")).encode())
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with schema_context(slug):
                media_fetch(message_id=message.pk)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    try:
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        downloads = [p for p in fake.paths() if p.startswith("/whatsapp_business/")]
        assert len(downloads) == 2
        with schema_context(slug):
            assert Attachment.objects.filter(message=message).count() == 1
        assert len(_files(settings)) == 1
    finally:
        _cleanup(slug)
