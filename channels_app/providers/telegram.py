"""Telegram Bot API: no HMAC; `setWebhook`'s secret token comes back in a header on every update."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.http import HttpRequest

from channels_app.providers.base import (
    FetchedMedia,
    InboundEventPart,
    InboundMessage,
    OutboundMessage,
    Provider,
    RateLimit,
    SendResult,
    fetched_media,
    secrets_match,
)
from hub.http import ProviderError, ResponseTooLarge, provider_download, provider_request

MEDIA_METHODS = {
    "image": ("sendPhoto", "photo"),
    "video": ("sendVideo", "video"),
    "audio": ("sendAudio", "audio"),
    "document": ("sendDocument", "document"),
}


def _largest_photo(photos: list[dict[str, Any]]) -> dict[str, Any]:
    return max(photos, key=lambda photo: photo.get("file_size", 0) or photo.get("width", 0))


def _content(message: dict[str, Any]) -> dict[str, Any]:
    caption = message.get("caption", "")
    content: dict[str, Any]
    if "text" in message:
        content = {"type": "text", "text": message["text"]}
    elif "photo" in message:
        content = {"type": "image", "media_id": _largest_photo(message["photo"])["file_id"]}
    elif "voice" in message:
        voice = message["voice"]
        content = {"type": "audio", "media_id": voice["file_id"], "voice": True}
        content["mime_type"] = voice.get("mime_type", "audio/ogg")
    elif "audio" in message:
        content = {"type": "audio", "media_id": message["audio"]["file_id"]}
    elif "video" in message:
        content = {"type": "video", "media_id": message["video"]["file_id"]}
    elif "document" in message:
        document = message["document"]
        content = {"type": "document", "media_id": document["file_id"]}
        if document.get("file_name"):
            content["filename"] = document["file_name"]
        if document.get("mime_type"):
            content["mime_type"] = document["mime_type"]
    elif "sticker" in message:
        content = {"type": "image", "media_id": message["sticker"]["file_id"], "sticker": True}
    elif "location" in message:
        location = message["location"]
        content = {
            "type": "location",
            "latitude": location["latitude"],
            "longitude": location["longitude"],
        }
        venue = message.get("venue") or {}
        if venue.get("title"):
            content["name"] = venue["title"]
        if venue.get("address"):
            content["address"] = venue["address"]
        return content
    else:
        return {"type": "unsupported", "description": "telegram message", "raw": message}
    if caption and content["type"] != "text":
        content["caption"] = caption
    reply = message.get("reply_to_message")
    if reply and content["type"] == "text":
        content["reply_to"] = f"{message['chat']['id']}:{reply['message_id']}"
    return content


def _sender(message: dict[str, Any]) -> tuple[str, str, str]:
    sender = message.get("from") or message["chat"]
    name = " ".join(filter(None, [sender.get("first_name"), sender.get("last_name")]))
    return str(sender["id"]), name or sender.get("title", ""), sender.get("language_code", "")


class Telegram(Provider):
    """Telegram Bot API: webhook updates in, `sendMessage` and friends out."""

    name = "telegram"

    def send(self, *, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        method, body = _request(message)
        response = provider_request(
            "POST", f"{settings.HUB_TELEGRAM_API_URL}/bot{config['bot_token']}/{method}", json=body
        )
        answer = _answer(response)
        result = answer.get("result")
        if not isinstance(result, dict):
            # setMessageReaction answers `true`: the reaction has no message id of its own.
            return SendResult(provider_message_id="")
        return SendResult(provider_message_id=f"{result['chat']['id']}:{result['message_id']}")

    def rate_limits(self, *, message: OutboundMessage, config: dict[str, Any]) -> list[RateLimit]:
        # Telegram's published limits: 30 messages a second per bot, about 1 a second per chat.
        return [
            RateLimit(scope="bot", capacity=30, per_seconds=1),
            RateLimit(
                scope=f"chat:{message.thread_id or message.recipient}", capacity=1, per_seconds=1
            ),
        ]

    def fetch_media(
        self, *, content: dict[str, Any], config: dict[str, Any], max_bytes: int
    ) -> FetchedMedia:
        """`getFile` turns the file id into a path, downloaded from `/file/bot<token>/<path>`.
        The Bot API serves files up to 20 MB and answers "file is too big" for larger ones."""
        file_id = str(content.get("media_id") or "")
        if not file_id:
            raise ProviderError(
                code="no_media_id", message="The message names no Telegram file.", transient=False
            )
        api = f"{settings.HUB_TELEGRAM_API_URL}/bot{config['bot_token']}"
        response = provider_request("POST", f"{api}/getFile", json={"file_id": file_id})
        try:
            file = _answer(response)["result"]
            path = str(file["file_path"])
        except ProviderError as error:
            if "too big" in error.message.lower():
                raise ResponseTooLarge(max_bytes=max_bytes) from error
            raise
        except (KeyError, TypeError):
            raise ProviderError(
                code="unexpected_response",
                message="getFile answered without a file path.",
                transient=False,
            ) from None
        if int(file.get("file_size") or 0) > max_bytes:
            raise ResponseTooLarge(max_bytes=max_bytes)
        download = provider_download(
            f"{settings.HUB_TELEGRAM_API_URL}/file/bot{config['bot_token']}/{quote(path)}",
            max_bytes=max_bytes,
        )
        return fetched_media(download, content, filename=PurePosixPath(path).name)

    def verify(self, *, request: HttpRequest, body: bytes, config: dict[str, Any]) -> bool:
        return secrets_match(
            str(config.get("secret_token", "")),
            request.headers.get("X-Telegram-Bot-Api-Secret-Token", ""),
        )

    def event_id(self, *, payload: Any, body: bytes) -> str:
        return f"update:{payload['update_id']}"

    def parse(self, *, payload: Any, config: dict[str, Any]) -> list[InboundEventPart]:
        if "callback_query" in payload:
            query = payload["callback_query"]
            message = query.get("message") or {}
            chat = message.get("chat") or {"id": query["from"]["id"], "type": "private"}
            external_id, name, language = _sender({"from": query["from"], "chat": chat})
            data = query.get("data", "")
            title = _button_title(message, data) or data
            content: dict[str, Any] = {
                "type": "text",
                "text": title,
                "choice": {"id": data, "title": title},
            }
            if message:
                content["reply_to"] = f"{chat['id']}:{message['message_id']}"
            return [
                InboundMessage(
                    external_id=external_id,
                    name=name,
                    content=content,
                    provider_message_id=f"callback:{query['id']}",
                    thread_id=str(chat["id"]),
                    conversation_type=_conversation_type(chat),
                    profile={"language": language} if language else {},
                )
            ]
        edited = "edited_message" in payload
        message = payload.get("message") or payload.get("edited_message")
        if not message:
            return []
        external_id, name, language = _sender(message)
        content = _content(message)
        if edited and content["type"] == "text":
            content["edited"] = True
        message_id = f"{message['chat']['id']}:{message['message_id']}"
        return [
            InboundMessage(
                external_id=external_id,
                name=name,
                content=content,
                provider_message_id=f"{message_id}:edit:{message.get('edit_date')}"
                if edited
                else message_id,
                thread_id=str(message["chat"]["id"]),
                conversation_type=_conversation_type(message["chat"]),
                edit_of=message_id if edited else "",
                profile={"language": language} if language else {},
            )
        ]


def _answer(response: Any) -> dict[str, Any]:
    """A Bot API answer, `{"ok": true, "result": …}`; else its error, transient for 429
    (with `retry_after`) and server trouble."""
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    if not answer.get("ok"):
        status = int(answer.get("error_code") or response.status_code)
        retry_after = (answer.get("parameters") or {}).get("retry_after")
        raise ProviderError(
            code=str(status),
            message=str(answer.get("description") or response.reason),
            transient=status == 429 or status >= 500,
            retry_after=float(retry_after) if retry_after is not None else None,
        )
    return answer


def _button_title(message: dict[str, Any], data: str) -> str:
    """The label of the inline button that carried `data`, as the contact saw it."""
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        for button in row:
            if button.get("callback_data") == data:
                return str(button.get("text", ""))
    return ""


def _conversation_type(chat: dict[str, Any]) -> str:
    return "direct" if chat.get("type", "private") == "private" else "group"


def _keyboard(content: dict[str, Any]) -> dict[str, Any]:
    if content["type"] == "buttons":
        rows = [[{"text": b["title"], "callback_data": b["id"][:64]}] for b in content["buttons"]]
    else:
        rows = [
            [{"text": row["title"], "callback_data": row["id"][:64]}]
            for section in content["sections"]
            for row in section["rows"]
        ]
    return {"inline_keyboard": rows}


def _request(message: OutboundMessage) -> tuple[str, dict[str, Any]]:
    """The Bot API method and body for canonical content."""
    content = message.content
    kind = content["type"]
    chat_id = message.thread_id or message.recipient
    if kind == "text":
        return "sendMessage", {"chat_id": chat_id, "text": content["text"]}
    if kind in {"buttons", "list"}:
        return "sendMessage", {
            "chat_id": chat_id,
            "text": content["text"],
            "reply_markup": _keyboard(content),
        }
    if kind in MEDIA_METHODS:
        method, field = MEDIA_METHODS[kind]
        if kind == "audio" and content.get("voice"):
            method, field = "sendVoice", "voice"
        body = {
            "chat_id": chat_id,
            field: content.get("media_id") or content.get("url") or message.media_urls[0],
        }
        if content.get("caption"):
            body["caption"] = content["caption"]
        return method, body
    if kind == "location":
        return "sendLocation", {
            "chat_id": chat_id,
            "latitude": content["latitude"],
            "longitude": content["longitude"],
        }
    if kind == "reaction":
        return "setMessageReaction", {
            "chat_id": chat_id,
            "message_id": int(str(content["message_id"]).rsplit(":", 1)[-1]),
            "reaction": [{"type": "emoji", "emoji": content.get("emoji", "")}],
        }
    raise ProviderError(
        code="unsupported_content", message=f"Telegram cannot send {kind}.", transient=False
    )
