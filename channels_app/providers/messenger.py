"""Messenger (`object: page`) and Instagram (`object: instagram`): Meta's two Send-API platforms.

They share WhatsApp's signature, handshake and body-hash event id (MetaProvider), one webhook
shape (`entry[].messaging[]`, each event keyed by what happened) and one Send API,
`POST {HUB_META_GRAPH_URL}/me/messages?access_token=<page token>`.

Choices worth knowing:
- `messaging_type: RESPONSE` on every message. It is what Meta allows inside the 24-hour window
  that the contact's last message opened; the hub answers contacts, so that is what it sends.
  Courier's `MESSAGE_TAG` `HUMAN_AGENT` stretches the window to 7 days, but Meta reserves it for
  replies written by a human and approves it per app; `OutboundMessage` does not say whether the
  AI or an operator wrote a message, so the tag would also be put on AI replies. Past the window
  Meta refuses with code 10 (subcode 2018278), and the message fails at once with that reason.
- Delivery and read receipts carry a watermark ("everything sent before this time"), and only
  sometimes message ids. A receipt therefore also marks the hub's earlier outbound messages to
  that contact, created before the watermark, that are not there yet; see `_covered_by_receipt`.
- Each request is one Meta message: a caption goes as a text after its attachment, and a text
  over the platform's limit as several texts. The last id is kept; a receipt for it covers the
  earlier ones. A transient failure after the first part resends the whole message on retry.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.db.models import Max

from channels_app.providers.base import (
    FetchedMedia,
    InboundEventPart,
    InboundMessage,
    OutboundMessage,
    RateLimit,
    SendResult,
    StatusUpdate,
    content_as_text,
    fetched_media,
)
from channels_app.providers.meta import MetaProvider, graph_error
from conversations.models import Message
from hub.http import ProviderError, provider_download, provider_request

MAX_QUICK_REPLIES = 13
MAX_QUICK_REPLY_TITLE = 20
# Limits of what canonical content accepts (conversations/content.py).
MAX_URL = 2000
MAX_DESCRIPTION = 500
MAX_CHOICE = 200
MAX_PROVIDER_ID = 255
# Graph codes the Messenger docs call temporary, on top of graph_error's throttling codes:
# 2 "retry your request later", 17 and 32 (user and page request limits), 1200 "temporary send
# message failure".
RETRYABLE_CODES = {"2", "17", "32", "1200"}
OUTBOUND_ATTACHMENTS = {"image": "image", "audio": "audio", "video": "video", "document": "file"}
INBOUND_MEDIA = {"image": "image", "audio": "audio", "video": "video", "file": "document"}
# Conversation-control and app events: nothing the contact said.
CONTROL_EVENTS = {
    "pass_thread_control",
    "take_thread_control",
    "request_thread_control",
    "app_roles",
    "policy_enforcement",
}
ENVELOPE = {"sender", "recipient", "timestamp"}
# Reaction names Meta sends, for a reaction that arrives without its emoji.
REACTION_EMOJI = {
    "love": "\u2764\ufe0f",
    "like": "\U0001f44d",
    "dislike": "\U0001f44e",
    "smile": "\U0001f606",
    "laugh": "\U0001f606",
    "wow": "\U0001f62e",
    "sad": "\U0001f622",
    "angry": "\U0001f620",
}
# Statuses a receipt moves the hub's messages from (a pending message has no Meta id yet).
RECEIPT_FROM = {"delivered": ["sent"], "read": ["sent", "delivered"]}
# A receipt marks at most this many earlier messages: they were marked by earlier receipts.
RECEIPT_LOOKBACK = 200


def _provider_id(value: str) -> str:
    """An id that fits the message column, derived deterministically when a long mid with a
    suffix would not."""
    if len(value) <= MAX_PROVIDER_ID:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def _unsupported(description: str, raw: Any) -> dict[str, Any]:
    return {"type": "unsupported", "description": description[:MAX_DESCRIPTION], "raw": raw}


def _with_link(description: str, url: str) -> str:
    """The description with the link kept, when the link fits whole."""
    if url and len(description) + 2 + len(url) <= MAX_DESCRIPTION:
        return f"{description}: {url}"
    return description


def _filename(url: str) -> str:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return name[:255] if "." in name else ""


def _choices(content: dict[str, Any]) -> list[dict[str, Any]]:
    return content.get("buttons") or [
        row for section in content.get("sections", []) for row in section["rows"]
    ]


class MetaMessaging(MetaProvider):
    """What Messenger and Instagram share; the subclasses name the platform and its limits."""

    webhook_object: ClassVar[str]
    account_key: ClassVar[str]
    # Meta's limit on one text: Messenger counts characters, Instagram UTF-8 bytes.
    text_limit: ClassVar[int]
    text_limit_in_bytes: ClassVar[bool] = False

    # Inbound.

    def parse(self, *, payload: Any, config: dict[str, Any]) -> list[InboundEventPart]:
        if payload.get("object") != self.webhook_object:
            return []
        own_account = str(config.get(self.account_key, ""))
        parts: list[InboundEventPart] = []
        for entry in payload.get("entry", []):
            entry_id = str(entry.get("id", ""))
            if own_account and entry_id != own_account:
                # Another page or account of the same app: not this channel's.
                continue
            # `standby` (another app owns the thread) is not read: this app may not answer it.
            for event in entry.get("messaging", []):
                parts.extend(self._event(event, own_account or entry_id))
        return parts

    def _event(self, event: dict[str, Any], own_account: str) -> list[InboundEventPart]:
        sender = str((event.get("sender") or {}).get("id", ""))
        if not sender or sender == own_account:
            return []  # the page's or account's own doing (echoes)
        stamp = str(event.get("timestamp", ""))
        if "message" in event:
            return self._message(sender, event["message"])
        if "delivery" in event:
            return self._receipt(sender, "delivered", event["delivery"])
        if "read" in event:
            return self._receipt(sender, "read", event["read"])
        if "postback" in event:
            return [self._postback(sender, event["postback"], stamp)]
        if "reaction" in event:
            return [self._reaction(sender, event["reaction"], stamp)]
        if "message_edit" in event:
            return self._edit(sender, event["message_edit"], stamp)
        kind = next((key for key in event if key not in ENVELOPE), "event")
        if kind in CONTROL_EVENTS:
            return []
        return [
            self._inbound(
                sender, _unsupported(f"{self.name} {kind}", event), f"{kind}:{sender}:{stamp}"
            )
        ]

    def _inbound(
        self, sender: str, content: dict[str, Any], provider_id: str, edit_of: str = ""
    ) -> InboundMessage:
        return InboundMessage(
            external_id=sender,
            thread_id=sender,
            content=content,
            provider_message_id=_provider_id(provider_id),
            edit_of=edit_of,
        )

    def _message(self, sender: str, message: dict[str, Any]) -> list[InboundEventPart]:
        mid = str(message.get("mid", ""))
        if message.get("is_echo") or not mid:
            return []
        if message.get("is_deleted"):
            # The contact unsent a message; the original is kept, the unsend noted.
            return [
                self._inbound(
                    sender, _unsupported(f"{self.name} message unsent", message), f"{mid}:deleted"
                )
            ]
        if message.get("is_unsupported"):
            return [self._inbound(sender, _unsupported(f"{self.name} message", message), mid)]
        contents: list[dict[str, Any]] = []
        text = message.get("text")
        if text:
            contents.append(self._text(str(text), message))
        for attachment in message.get("attachments") or []:
            if text and attachment.get("type") == "fallback":
                continue  # the preview of a link the text already holds
            contents.append(self._attachment(attachment))
        if not contents:
            contents.append(_unsupported(f"{self.name} message", message))
        # One message per part: the text or first attachment keeps the mid.
        return [
            self._inbound(sender, content, mid if index == 0 else f"{mid}:{index}")
            for index, content in enumerate(contents)
        ]

    def _text(self, text: str, message: dict[str, Any]) -> dict[str, Any]:
        content: dict[str, Any] = {"type": "text", "text": text}
        payload = str((message.get("quick_reply") or {}).get("payload", ""))
        if payload:
            content["choice"] = {"id": payload[:MAX_CHOICE], "title": text[:MAX_CHOICE]}
        reply_to = message.get("reply_to") or {}
        if reply_to.get("mid") and len(str(reply_to["mid"])) <= MAX_PROVIDER_ID:
            content["reply_to"] = str(reply_to["mid"])
        story = reply_to.get("story")
        if isinstance(story, dict):
            # A reply to the account's story: the story is no message of the conversation, so
            # its link goes with the text, where operators and the agent both see it.
            where = story.get("url") or f"story {story.get('id', '')}".strip()
            content["text"] = f"{text}\n\n[Reply to story: {where}]"
        return content

    def _attachment(self, attachment: dict[str, Any]) -> dict[str, Any]:
        kind = str(attachment.get("type", ""))
        payload = attachment.get("payload") or {}
        url = str(payload.get("url") or "")
        if kind in INBOUND_MEDIA and url and len(url) <= MAX_URL:
            content: dict[str, Any] = {"type": INBOUND_MEDIA[kind], "url": url}
            if kind == "image" and payload.get("sticker_id"):
                content["sticker"] = True
            if kind == "file" and _filename(url):
                content["filename"] = _filename(url)
            return content
        coordinates = payload.get("coordinates") or {}
        if kind == "location" and {"lat", "long"} <= set(coordinates):
            return {
                "type": "location",
                "latitude": coordinates["lat"],
                "longitude": coordinates["long"],
            }
        if kind == "like_heart":
            # Instagram's heart sticker: a message of its own, not a reaction to one.
            return {"type": "text", "text": REACTION_EMOJI["love"]}
        label = "story mention" if kind == "story_mention" else kind or "attachment"
        return _unsupported(_with_link(f"{self.name} {label}", url), attachment)

    def _postback(self, sender: str, postback: dict[str, Any], stamp: str) -> InboundMessage:
        payload = str(postback.get("payload") or "")
        title = str(postback.get("title") or payload)
        mid = str(postback.get("mid") or f"postback:{sender}:{stamp}")
        if not title:
            return self._inbound(sender, _unsupported(f"{self.name} postback", postback), mid)
        content: dict[str, Any] = {"type": "text", "text": title}
        if payload:
            content["choice"] = {"id": payload[:MAX_CHOICE], "title": title[:MAX_CHOICE]}
        return self._inbound(sender, content, mid)

    def _reaction(self, sender: str, reaction: dict[str, Any], stamp: str) -> InboundMessage:
        target = str(reaction.get("mid", ""))
        action = str(reaction.get("action", "react"))
        provider_id = f"reaction:{target}:{stamp}:{action}"
        if not target or len(target) > MAX_PROVIDER_ID:
            return self._inbound(
                sender, _unsupported(f"{self.name} reaction", reaction), provider_id
            )
        emoji = ""
        if action != "unreact":
            name = str(reaction.get("reaction", ""))
            emoji = str(reaction.get("emoji") or REACTION_EMOJI.get(name, name))[:32]
        return self._inbound(
            sender, {"type": "reaction", "emoji": emoji, "message_id": target}, provider_id
        )

    def _edit(self, sender: str, edit: dict[str, Any], stamp: str) -> list[InboundEventPart]:
        mid, text = str(edit.get("mid", "")), str(edit.get("text") or "")
        if not mid or not text:
            return []
        content = {"type": "text", "text": text, "edited": True}
        number = edit.get("num_edit", stamp)
        return [self._inbound(sender, content, f"{mid}:edit:{number}", edit_of=mid)]

    def _receipt(self, sender: str, status: str, receipt: dict[str, Any]) -> list[InboundEventPart]:
        mids = [str(mid) for mid in receipt.get("mids") or [] if mid]
        if receipt.get("mid"):
            mids.append(str(receipt["mid"]))  # Instagram's messaging_seen names the message
        watermark = receipt.get("watermark")
        upto = datetime.fromtimestamp(int(watermark) / 1000, tz=UTC) if watermark else None
        covered = _covered_by_receipt(
            kind=self.name, external_id=sender, status=status, upto=upto, mids=mids
        )
        return [
            StatusUpdate(provider_message_id=mid, status=status)
            for mid in dict.fromkeys([*mids, *covered])
        ]

    # Outbound.

    def send(self, *, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        provider_message_id = ""
        for body in self._bodies(message):
            response = provider_request(
                "POST",
                f"{settings.HUB_META_GRAPH_URL}/me/messages",
                params={"access_token": config["access_token"]},
                json=body,
            )
            if response.status_code != 200:
                error = graph_error(response)
                if error.code in RETRYABLE_CODES:
                    error.transient = True
                raise error
            try:
                answer = response.json()
            except ValueError as error:
                raise ProviderError(
                    code="unexpected_response",
                    message="Meta answered 200 without JSON.",
                    transient=False,
                ) from error
            # A sender action (a reaction) answers with `recipient_id` only.
            provider_message_id = str(answer.get("message_id") or "")
        return SendResult(provider_message_id=provider_message_id)

    def rate_limits(self, *, message: OutboundMessage, config: dict[str, Any]) -> list[RateLimit]:
        # Meta publishes 300 calls a second per page or Instagram account for text, links,
        # reactions and stickers, and 10 a second for audio and video. The hub keeps to a third
        # and a half of those, and to a burst of 5 (then 1 a second) per contact, since Meta
        # also throttles "too many messages sent to a single thread" without saying how many.
        limits = [
            RateLimit(scope="account", capacity=100, per_seconds=1),
            RateLimit(
                scope=f"thread:{message.thread_id or message.recipient}", capacity=5, per_seconds=5
            ),
        ]
        if message.content.get("type") in {"audio", "video"}:
            limits.append(RateLimit(scope="audio-video", capacity=5, per_seconds=1))
        return limits

    def fetch_media(
        self, *, content: dict[str, Any], config: dict[str, Any], max_bytes: int
    ) -> FetchedMedia:
        """The attachment's CDN URL needs no token, but it expires (within days): a message
        fetched too late fails with the CDN's 403 or 404, recorded on the message."""
        url = str(content.get("url") or "")
        if not url:
            raise ProviderError(
                code="no_media_url", message="The message names no file URL.", transient=False
            )
        download = provider_download(url, max_bytes=max_bytes)
        return fetched_media(download, content, filename=_filename(url))

    def _bodies(self, message: OutboundMessage) -> list[dict[str, Any]]:
        """The Send API requests for one canonical message, in order."""
        content = message.content
        kind = content["type"]
        recipient = {"id": message.recipient or message.thread_id}
        if kind == "reaction":
            return [{"recipient": recipient, **self._reaction_action(content)}]
        messages: list[dict[str, Any]]
        if kind in OUTBOUND_ATTACHMENTS:
            url = content.get("url") or (message.media_urls[0] if message.media_urls else "")
            if not url:
                raise ProviderError(
                    code="unsupported_content",
                    message=f"{self.name.title()} sends media by URL; this {kind} has none.",
                    transient=False,
                )
            attachment = {
                "type": OUTBOUND_ATTACHMENTS[kind],
                "payload": {"url": url, "is_reusable": True},
            }
            messages = [{"attachment": attachment}]
            if content.get("caption"):
                messages += [{"text": chunk} for chunk in self._chunks(content["caption"])]
        elif kind in {"buttons", "list"} and self._fits_quick_replies(content):
            messages = [{"text": chunk} for chunk in self._chunks(content["text"])]
            messages[-1]["quick_replies"] = [
                {"content_type": "text", "title": choice["title"], "payload": choice["id"]}
                for choice in _choices(content)
            ]
        elif kind in {"text", "buttons", "list", "location"}:
            text = content_as_text(content, message.media_urls)
            messages = [{"text": chunk} for chunk in self._chunks(text)]
        else:
            raise ProviderError(
                code="unsupported_content",
                message=f"{self.name.title()} cannot send {kind}.",
                transient=False,
            )
        return [
            {"messaging_type": "RESPONSE", "recipient": recipient, "message": body}
            for body in messages
        ]

    @staticmethod
    def _fits_quick_replies(content: dict[str, Any]) -> bool:
        choices = _choices(content)
        return len(choices) <= MAX_QUICK_REPLIES and all(
            len(choice["title"]) <= MAX_QUICK_REPLY_TITLE for choice in choices
        )

    def _reaction_action(self, content: dict[str, Any]) -> dict[str, Any]:
        emoji = str(content.get("emoji") or "")
        if not emoji:
            return {"sender_action": "unreact", "payload": {"message_id": content["message_id"]}}
        return {
            "sender_action": "react",
            "payload": {
                "message_id": content["message_id"],
                "reaction": self._reaction_value(emoji),
            },
        }

    def _reaction_value(self, emoji: str) -> str:
        return emoji

    def _chunks(self, text: str) -> list[str]:
        """The text in pieces Meta accepts, cut at whitespace where there is some."""
        chunks: list[str] = []
        rest = text
        while self._size(rest) > self.text_limit:
            if self.text_limit_in_bytes:
                head = rest.encode()[: self.text_limit].decode(errors="ignore")
            else:
                head = rest[: self.text_limit]
            cut = max(head.rfind(" "), head.rfind("\n"))
            if cut < len(head) // 2:
                cut = len(head)  # no whitespace late enough: cut inside the word
            chunks.append(rest[:cut].rstrip())
            rest = rest[cut:].lstrip()
        if rest or not chunks:
            chunks.append(rest)
        return chunks

    def _size(self, text: str) -> int:
        return len(text.encode()) if self.text_limit_in_bytes else len(text)


def _covered_by_receipt(
    *, kind: str, external_id: str, status: str, upto: datetime | None, mids: list[str]
) -> list[str]:
    """Meta ids of the hub's messages to this contact that a receipt covers without naming them.

    A watermark receipt covers every message sent before it. The hub compares the watermark
    with the time it created each message, which precedes Meta's send time: a message still
    being retried when the receipt is read could be marked early, a rare and harmless race. A
    receipt naming a message (Instagram's read) covers every message created before that one.
    Read-only: the caller turns the ids into status updates that only ever move forward.
    """
    outbound = Message.objects.filter(
        channel__kind=kind,
        direction=Message.Direction.OUT,
        conversation__contact__identities__channel_kind=kind,
        conversation__contact__identities__external_id=external_id,
    ).exclude(provider_message_id="")
    if upto is None and mids:
        upto = outbound.filter(provider_message_id__in=mids).aggregate(last=Max("created_at"))[
            "last"
        ]
    if upto is None:
        return []
    return list(
        outbound.filter(status__in=RECEIPT_FROM[status], created_at__lte=upto)
        .order_by("-created_at")
        .values_list("provider_message_id", flat=True)[:RECEIPT_LOOKBACK]
    )


class Messenger(MetaMessaging):
    """Facebook Messenger: Page webhooks in, the Page's Send API out."""

    name = "messenger"
    webhook_object = "page"
    account_key = "page_id"
    text_limit = 2000


class Instagram(MetaMessaging):
    """Instagram Direct: Instagram webhooks in, the Send API (Messenger API for Instagram) out."""

    name = "instagram"
    webhook_object = "instagram"
    account_key = "instagram_account_id"
    text_limit = 1000
    text_limit_in_bytes = True

    def _reaction_value(self, emoji: str) -> str:
        # The Send API for Instagram takes one reaction, "love".
        if emoji.rstrip("\ufe0f") in {"\u2764", "\u2665"} or emoji == "love":
            return "love"
        raise ProviderError(
            code="unsupported_content",
            message="Instagram only accepts the heart (love) reaction.",
            transient=False,
        )
