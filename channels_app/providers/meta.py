"""Meta's platforms (WhatsApp Cloud API, Messenger, Instagram): one signature scheme, one handshake.

Signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed by the app
secret>`. Handshake: `hub.mode=subscribe` with the channel's verify token echoes `hub.challenge`.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, QueryDict

from channels_app.providers.base import (
    FetchedMedia,
    InboundEventPart,
    InboundMessage,
    OutboundMessage,
    Provider,
    RateLimit,
    SendResult,
    StatusUpdate,
    WebhookRejected,
    fetched_media,
    secrets_match,
)
from hub.http import (
    ProviderError,
    ResponseTooLarge,
    provider_download,
    provider_request,
    retry_after_seconds,
)

MEDIA_TYPES = {"image", "video", "audio", "document", "sticker"}
STATUSES = {"sent", "delivered", "read", "failed"}
# Graph API error codes that mean "slow down", not "never" (pair rate limits included).
THROTTLING_CODES = {4, 80007, 130429, 131048, 131056, 133016, 613}
WHATSAPP_MAX_BUTTONS = 3


def graph_error(response: Any) -> ProviderError:
    """Reads a Graph API error: throttling and server trouble are transient, the rest is not
    (invalid recipient, the 24-hour window, a revoked token)."""
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    code = error.get("code")
    message = error.get("error_data", {}).get("details") or error.get("message") or response.reason
    transient = (
        code in THROTTLING_CODES or response.status_code == 429 or response.status_code >= 500
    )
    return ProviderError(
        code=str(code or response.status_code),
        message=str(message),
        transient=transient,
        retry_after=retry_after_seconds(response),
    )


class MetaProvider(Provider):
    def handshake(self, *, params: QueryDict, config: dict[str, Any]) -> HttpResponse:
        if params.get("hub.mode") != "subscribe" or not secrets_match(
            str(config.get("verify_token", "")), params.get("hub.verify_token", "")
        ):
            raise WebhookRejected(403, "verification_failed", "The verify token does not match.")
        return HttpResponse(params.get("hub.challenge", ""), content_type="text/plain")

    def verify(self, *, request: HttpRequest, body: bytes, config: dict[str, Any]) -> bool:
        header = request.headers.get("X-Hub-Signature-256", "")
        secret = str(config.get("app_secret", ""))
        if not header.startswith("sha256=") or not secret:
            return False
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return secrets_match(expected, header.removeprefix("sha256="))

    def event_id(self, *, payload: Any, body: bytes) -> str:
        # Meta batches several messages and statuses per body and gives the body no id; the
        # body's hash catches redeliveries, and message ids catch a re-batched one.
        return "sha256:" + hashlib.sha256(body).hexdigest()


def _whatsapp_content(message: dict[str, Any]) -> dict[str, Any]:
    kind = message.get("type")
    reply_to = (message.get("context") or {}).get("id", "")
    if kind == "text":
        content: dict[str, Any] = {"type": "text", "text": message["text"]["body"]}
    elif kind in MEDIA_TYPES:
        media = message[kind]
        content = {
            "type": "image" if kind == "sticker" else kind,
            "media_id": media["id"],
            "mime_type": media.get("mime_type", ""),
        }
        for key in ("caption", "filename"):
            if media.get(key):
                content[key] = media[key]
        if kind == "sticker":
            content["sticker"] = True
        if media.get("voice"):
            content["voice"] = True
        return content
    elif kind == "location":
        location = message["location"]
        content = {
            "type": "location",
            "latitude": location["latitude"],
            "longitude": location["longitude"],
        }
        for key in ("name", "address"):
            if location.get(key):
                content[key] = location[key]
        return content
    elif kind == "interactive":
        interactive = message["interactive"]
        reply = interactive.get(interactive.get("type", ""), {})
        content = {
            "type": "text",
            "text": reply.get("title", ""),
            "choice": {"id": reply.get("id", ""), "title": reply.get("title", "")},
        }
    elif kind == "button":
        button = message["button"]
        content = {
            "type": "text",
            "text": button.get("text", ""),
            "choice": {"id": button.get("payload", ""), "title": button.get("text", "")},
        }
    elif kind == "reaction":
        reaction = message["reaction"]
        return {
            "type": "reaction",
            "emoji": reaction.get("emoji", ""),
            "message_id": reaction["message_id"],
        }
    else:
        return {"type": "unsupported", "description": f"whatsapp {kind}", "raw": message}
    if reply_to:
        content["reply_to"] = reply_to
    return content


def _whatsapp_body(message: OutboundMessage) -> dict[str, Any]:
    content = message.content
    kind = content["type"]
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.recipient,
    }
    if kind == "text":
        body.update(type="text", text={"body": content["text"], "preview_url": False})
    elif kind in {"image", "audio", "video", "document"}:
        if content.get("media_id"):
            media: dict[str, Any] = {"id": content["media_id"]}
        else:
            media = {"link": content.get("url") or message.media_urls[0]}
        if content.get("caption") and kind != "audio":
            media["caption"] = content["caption"]
        if kind == "document" and content.get("filename"):
            media["filename"] = content["filename"]
        body.update({"type": kind, kind: media})
    elif kind == "buttons" and len(content["buttons"]) <= WHATSAPP_MAX_BUTTONS:
        buttons = [
            {"type": "reply", "reply": {"id": b["id"], "title": b["title"][:20]}}
            for b in content["buttons"]
        ]
        body.update(
            type="interactive",
            interactive={
                "type": "button",
                "body": {"text": content["text"]},
                "action": {"buttons": buttons},
            },
        )
    elif kind in {"buttons", "list"}:
        sections = content.get("sections") or [{"rows": content["buttons"]}]
        rows = [
            {
                "rows": [
                    {k: v for k, v in row.items() if k in {"id", "title", "description"}}
                    for row in s["rows"]
                ],
                **({"title": s["title"]} if s.get("title") else {}),
            }
            for s in sections
        ]
        body.update(
            type="interactive",
            interactive={
                "type": "list",
                "body": {"text": content["text"]},
                "action": {"button": content.get("button", "Choose")[:20], "sections": rows},
            },
        )
    elif kind == "location":
        body.update(
            type="location",
            location={
                k: content[k] for k in ("latitude", "longitude", "name", "address") if k in content
            },
        )
    elif kind == "reaction":
        body.update(
            type="reaction",
            reaction={"message_id": content["message_id"], "emoji": content.get("emoji", "")},
        )
    else:
        raise ProviderError(
            code="unsupported_content", message=f"WhatsApp cannot send {kind}.", transient=False
        )
    if content.get("reply_to"):
        body["context"] = {"message_id": content["reply_to"]}
    return body


class WhatsAppCloud(MetaProvider):
    """WhatsApp Cloud API: webhooks in, `POST /{phone-number-id}/messages` out."""

    name = "whatsapp"

    def send(self, *, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        response = provider_request(
            "POST",
            f"{settings.HUB_META_GRAPH_URL}/{config['phone_number_id']}/messages",
            json=_whatsapp_body(message),
            headers={"Authorization": f"Bearer {config['access_token']}"},
        )
        if response.status_code != 200:
            raise graph_error(response)
        return SendResult(provider_message_id=response.json()["messages"][0]["id"])

    def rate_limits(self, *, message: OutboundMessage, config: dict[str, Any]) -> list[RateLimit]:
        # Cloud API throughput per business phone number.
        return [RateLimit(scope="number", capacity=80, per_seconds=1)]

    def fetch_media(
        self, *, content: dict[str, Any], config: dict[str, Any], max_bytes: int
    ) -> FetchedMedia:
        """`GET /{media-id}` gives a short-lived URL (and the size), which is then downloaded
        with the same token. The media id stays valid for 30 days, the URL for 5 minutes, so a
        retry asks for a fresh URL."""
        media_id = str(content.get("media_id") or "")
        if not media_id:
            raise ProviderError(
                code="no_media_id", message="The message names no WhatsApp media.", transient=False
            )
        headers = {"Authorization": f"Bearer {config['access_token']}"}
        params = {"phone_number_id": config["phone_number_id"]}
        response = provider_request(
            "GET", f"{settings.HUB_META_GRAPH_URL}/{media_id}", params=params, headers=headers
        )
        if response.status_code != 200:
            raise graph_error(response)
        try:
            media = response.json()
            url = str(media["url"])
        except (ValueError, KeyError, TypeError):
            raise ProviderError(
                code="unexpected_response",
                message="The Graph API answered without the media's URL.",
                transient=False,
            ) from None
        if str(media.get("file_size", "")).isdigit() and int(media["file_size"]) > max_bytes:
            raise ResponseTooLarge(max_bytes=max_bytes)
        download = provider_download(url, max_bytes=max_bytes, headers=headers)
        mime_type = content.get("mime_type") or media.get("mime_type") or ""
        return fetched_media(download, {**content, "mime_type": mime_type})

    def parse(self, *, payload: Any, config: dict[str, Any]) -> list[InboundEventPart]:
        parts: list[InboundEventPart] = []
        own_number = str(config.get("phone_number_id", ""))
        for entry in payload.get("entry", []):
            for change in entry.get("changes", []):
                value = change.get("value", {})
                number = str(value.get("metadata", {}).get("phone_number_id", ""))
                if own_number and number and number != own_number:
                    continue
                names = {
                    c.get("wa_id"): c.get("profile", {}).get("name", "")
                    for c in value.get("contacts", [])
                }
                for message in value.get("messages", []):
                    sender = message["from"]
                    parts.append(
                        InboundMessage(
                            external_id=sender,
                            name=names.get(sender, ""),
                            content=_whatsapp_content(message),
                            provider_message_id=message["id"],
                            profile={"phone": f"+{sender}"},
                        )
                    )
                for status in value.get("statuses", []):
                    if status.get("status") not in STATUSES:
                        continue
                    error = (status.get("errors") or [{}])[0]
                    details = error.get("error_data", {}).get("details", "")
                    parts.append(
                        StatusUpdate(
                            provider_message_id=status["id"],
                            status=status["status"],
                            error_code=str(error.get("code", "")),
                            error_message=details
                            or error.get("message", "")
                            or error.get("title", ""),
                        )
                    )
        return parts
