"""Signal through a signal-cli REST API (bbernhard/signal-cli-rest-api).

In: the hub polls `GET /v1/receive/{number}` every minute (channels_app.polling), or, with the
REST API in json-rpc mode, the API posts each message to the channel's webhook URL
(`RECEIVE_WEBHOOK_URL`). Those posts carry no signature, no secret header and no timestamp, so
the webhook is refused (401) unless the channel's config sets `accept_webhook: true`: turn it on
only when the REST API reaches the hub over a private network (loopback, a container network)
and the webhook URL's channel token is known to nothing else. Polling needs no such trust.

Out: `POST /v2/send`; the provider id of a sent message is the timestamp Signal gives it, which
is also how receipts, reactions and quotes name it.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any
from urllib.parse import quote

from django.http import HttpRequest

from channels_app.providers.base import (
    FetchedMedia,
    InboundEventPart,
    InboundMessage,
    OutboundMessage,
    Provider,
    RateLimit,
    SendResult,
    StatusUpdate,
    content_as_text,
    fetched_media,
)
from conversations.content import MAX_CAPTION
from hub.http import ProviderError, provider_download, provider_request, retry_after_seconds

logger = logging.getLogger(__name__)

GROUP_PREFIX = "group."


def signal_decode(body: bytes) -> dict[str, Any]:
    """A receive item `{envelope, account}`, from a polled item or a JSON-RPC `receive`
    notification (`{"jsonrpc": "2.0", "method": "receive", "params": {envelope, account}}`)."""
    payload = json.loads(body)
    if isinstance(payload, dict) and "jsonrpc" in payload:
        if payload.get("method") != "receive":
            raise ValueError("not a receive notification")
        payload = payload.get("params")
    if not isinstance(payload, dict) or not isinstance(payload.get("envelope"), dict):
        raise ValueError("no envelope")
    return payload


def _sender(envelope: dict[str, Any]) -> str:
    return str(
        envelope.get("sourceUuid") or envelope.get("source") or envelope.get("sourceNumber") or ""
    )


def signal_event_id(payload: dict[str, Any]) -> str:
    """(sender, timestamp): Signal's own identity of a message, stable across redeliveries."""
    envelope = payload["envelope"]
    sender = _sender(envelope)
    if not sender:
        raise KeyError("source")
    return f"{sender}:{int(envelope['timestamp'])}"


def _target_id(
    author_uuid: Any, author: Any, author_number: Any, timestamp: Any, account: str
) -> str:
    """The provider id of the message a reaction or quote points at: the bare timestamp for the
    hub's own (what /v2/send returned), `<sender>:<timestamp>` for the contact's."""
    if account and account in {author, author_number}:
        return str(timestamp)
    return f"{author_uuid or author or author_number}:{timestamp}"


def _attachment_content(attachment: dict[str, Any]) -> dict[str, Any]:
    mime_type = str(attachment.get("contentType") or "application/octet-stream")
    major = mime_type.split("/", 1)[0]
    content: dict[str, Any] = {
        "type": major if major in {"image", "audio", "video"} else "document",
        # Fetch with GET {api_url}/v1/attachments/{id} while signal-cli keeps it.
        "media_id": str(attachment["id"]),
        "mime_type": mime_type[:100],
    }
    if attachment.get("filename"):
        content["filename"] = str(attachment["filename"])[:255]
    if attachment.get("caption"):
        content["caption"] = str(attachment["caption"])[:MAX_CAPTION]
    if attachment.get("voiceNote"):
        content["voice"] = True
    return content


def _data_contents(data: dict[str, Any], account: str) -> list[dict[str, Any]]:
    """A dataMessage as canonical contents: one per attachment (the text as the first one's
    caption when it fits), else its text, reaction or sticker."""
    text = str(data.get("message") or "")
    quote = data.get("quote") or {}
    reply_to = (
        _target_id(
            quote.get("authorUuid"),
            quote.get("author"),
            quote.get("authorNumber"),
            quote.get("id"),
            account,
        )
        if quote.get("id")
        else ""
    )
    if data.get("reaction"):
        reaction = data["reaction"]
        return [
            {
                "type": "reaction",
                "emoji": "" if reaction.get("isRemove") else str(reaction.get("emoji") or ""),
                "message_id": _target_id(
                    reaction.get("targetAuthorUuid"),
                    reaction.get("targetAuthor"),
                    reaction.get("targetAuthorNumber"),
                    reaction.get("targetSentTimestamp"),
                    account,
                ),
            }
        ]
    contents: list[dict[str, Any]] = []
    attachments = [a for a in data.get("attachments") or [] if isinstance(a, dict) and a.get("id")]
    if attachments:
        contents = [_attachment_content(a) for a in attachments]
        if text and len(text) <= MAX_CAPTION and "caption" not in contents[0]:
            contents[0]["caption"] = text
            text = ""
    if text:
        content: dict[str, Any] = {"type": "text", "text": text}
        if reply_to:
            content["reply_to"] = reply_to
        contents.insert(0, content)
    if data.get("sticker"):
        sticker = data["sticker"]
        contents.append(
            {
                "type": "image",
                "media_id": f"sticker:{sticker.get('packId')}:{sticker.get('stickerId')}",
                "sticker": True,
            }
        )
    if contents:
        return contents
    if data.get("remoteDelete"):
        return [{"type": "unsupported", "description": "signal remote delete", "raw": data}]
    group = data.get("groupInfo") or {}
    if group.get("type") == "UPDATE" or data.get("isExpirationUpdate"):
        return []  # group membership or disappearing-message settings: nothing to answer
    return [{"type": "unsupported", "description": "signal message", "raw": data}]


def signal_parse(payload: dict[str, Any], *, config: dict[str, Any]) -> list[InboundEventPart]:
    envelope = payload["envelope"]
    account = str(config.get("number") or payload.get("account") or "")
    sender = _sender(envelope)
    receipt = envelope.get("receiptMessage")
    if receipt:
        status = (
            "read"
            if receipt.get("isRead") or receipt.get("isViewed")
            else "delivered"
            if receipt.get("isDelivery")
            else ""
        )
        return [
            StatusUpdate(provider_message_id=str(timestamp), status=status)
            for timestamp in receipt.get("timestamps") or []
            if status
        ]
    edit = envelope.get("editMessage") or {}
    data = edit.get("dataMessage") or envelope.get("dataMessage")
    if not data:
        if envelope.get("callMessage"):
            contents = [{"type": "unsupported", "description": "signal call", "raw": envelope}]
        elif envelope.get("storyMessage"):
            contents = [{"type": "unsupported", "description": "signal story", "raw": envelope}]
        else:
            return []  # typing indicators, sync messages from the account's own devices
    else:
        contents = _data_contents(data, account)
    group = (data or {}).get("groupInfo") or {}
    timestamp = int((data or {}).get("timestamp") or envelope["timestamp"])
    base_id = f"{sender}:{timestamp}"
    phone = envelope.get("sourceNumber") or ""
    parts: list[InboundEventPart] = []
    for index, content in enumerate(contents):
        edit_of = ""
        if edit and index == 0 and content["type"] == "text":
            content["edited"] = True
            edit_of = f"{sender}:{edit.get('targetSentTimestamp')}"
        parts.append(
            InboundMessage(
                external_id=sender,
                name=str(envelope.get("sourceName") or ""),
                content=content,
                provider_message_id=base_id if index == 0 else f"{base_id}#{index}",
                thread_id=str(group.get("groupId") or ""),
                conversation_type="group" if group.get("groupId") else "direct",
                edit_of=edit_of,
                profile={"phone": str(phone)} if phone else {},
            )
        )
    return parts


def _group_recipient(group_id: str) -> str:
    """The REST API's name for a group: `group.` + base64 of the id signal-cli reports."""
    return GROUP_PREFIX + base64.b64encode(group_id.encode()).decode()


def signal_error(response: Any, *, number: str) -> ProviderError:
    """400 (bad request, unregistered recipient) is permanent, 5xx transient. A 429 carrying
    `challenge_tokens` is Signal asking for a captcha: no retry succeeds until someone solves
    it for this account, so the message fails at once with that reason (and is retried from
    the hub after solving it); a bare 429 is an ordinary transient rate limit."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    text = str(body.get("error") or response.reason or "signal-cli REST API error")
    status = response.status_code
    if status == 429 and body.get("challenge_tokens"):
        return ProviderError(
            code="rate_limit_challenge",
            message=(
                f"{text} Signal asks for a captcha: solve it for {number} "
                "(POST /v1/accounts/{number}/rate-limit-challenge on the REST API), then retry."
            ),
            transient=False,
        )
    return ProviderError(
        code=str(status),
        message=text,
        transient=status == 429 or status >= 500,
        retry_after=retry_after_seconds(response),
    )


def _attachments(message_id: str) -> list[str]:
    """The message's files as the data URIs /v2/send takes."""
    from conversations.models import Attachment

    uris = []
    for attachment in Attachment.objects.filter(message_id=message_id).order_by("created_at"):
        with attachment.file.open("rb") as handle:
            encoded = base64.b64encode(handle.read()).decode()
        filename = attachment.filename.replace(";", "_").replace(",", "_")
        uris.append(f"data:{attachment.content_type};filename={filename};base64,{encoded}")
    return uris


class Signal(Provider):
    name = "signal"

    def verify(self, *, request: HttpRequest, body: bytes, config: dict[str, Any]) -> bool:
        # signal-cli-rest-api signs nothing: the only protection is where the REST API sits on
        # the network, which the channel's owner vouches for with `accept_webhook: true`.
        return config.get("accept_webhook") is True and bool(body.strip())

    def decode(self, *, body: bytes) -> Any:
        return signal_decode(body)

    def event_id(self, *, payload: Any, body: bytes) -> str:
        return signal_event_id(payload)

    def parse(self, *, payload: Any, config: dict[str, Any]) -> list[InboundEventPart]:
        return signal_parse(payload, config=config)

    def send(self, *, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        api_url = str(config["api_url"]).rstrip("/")
        number = str(config["number"])
        recipient = _group_recipient(message.thread_id) if message.thread_id else message.recipient
        content = message.content
        if content["type"] == "reaction":
            return self._react(api_url, number, recipient, content)
        body: dict[str, Any] = {
            "number": number,
            "recipients": [recipient],
            "message": content_as_text(content),
            "text_mode": "normal",
        }
        attachments = _attachments(message.message_id)
        if attachments:
            body["base64_attachments"] = attachments
        response = provider_request("POST", f"{api_url}/v2/send", json=body)
        if response.status_code not in (200, 201):
            raise signal_error(response, number=number)
        try:
            timestamp = response.json()["timestamp"]
        except (ValueError, KeyError, TypeError):
            raise ProviderError(
                code="unexpected_response",
                message="The REST API answered without a timestamp.",
                transient=False,
            ) from None
        return SendResult(provider_message_id=str(timestamp))

    def _react(
        self, api_url: str, number: str, recipient: str, content: dict[str, Any]
    ) -> SendResult:
        author, _, timestamp = str(content["message_id"]).rpartition(":")
        body = {
            "recipient": recipient,
            "reaction": content.get("emoji", ""),
            "target_author": author or number,
            "timestamp": int(timestamp.split("#", 1)[0]),
        }
        method = "POST" if content.get("emoji") else "DELETE"
        response = provider_request(method, f"{api_url}/v1/reactions/{number}", json=body)
        if response.status_code >= 300:
            raise signal_error(response, number=number)
        return SendResult(provider_message_id="")

    def fetch_media(
        self, *, content: dict[str, Any], config: dict[str, Any], max_bytes: int
    ) -> FetchedMedia:
        """`GET /v1/attachments/{id}` from the REST API, which keeps received attachments on
        its disk. Stickers are named by pack and id and are not served there."""
        attachment_id = str(content.get("media_id") or "")
        if not attachment_id or attachment_id.startswith("sticker:"):
            raise ProviderError(
                code="no_media_fetch",
                message="The signal-cli REST API does not serve this file (stickers are not kept).",
                transient=False,
            )
        api_url = str(config["api_url"]).rstrip("/")
        download = provider_download(
            f"{api_url}/v1/attachments/{quote(attachment_id, safe='')}", max_bytes=max_bytes
        )
        return fetched_media(download, content)

    def rate_limits(self, *, message: OutboundMessage, config: dict[str, Any]) -> list[RateLimit]:
        # Signal publishes no sending rate; its server answers bursts with captcha challenges.
        # The hub's own pace: one message a second per account, bursts of ten.
        return [RateLimit(scope="account", capacity=10, per_seconds=10)]
