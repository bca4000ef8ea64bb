"""Meta's platforms (WhatsApp Cloud API, Messenger, Instagram): one signature scheme, one handshake.

Signature: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed by the app
secret>`. Handshake: `hub.mode=subscribe` with the channel's verify token echoes `hub.challenge`.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.http import HttpRequest, HttpResponse, QueryDict

from channels_app.providers.base import (
    InboundEventPart,
    InboundMessage,
    Provider,
    StatusUpdate,
    WebhookRejected,
    secrets_match,
)

MEDIA_TYPES = {"image", "video", "audio", "document", "sticker"}
STATUSES = {"sent", "delivered", "read", "failed"}


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


class WhatsAppCloud(MetaProvider):
    name = "whatsapp"

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
