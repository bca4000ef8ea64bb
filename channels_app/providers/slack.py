"""Slack: the Events API and interactivity in, `chat.postMessage` and `reactions.add` out.

Signature: `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:<timestamp>:<raw body>", keyed by the
signing secret>` with `X-Slack-Request-Timestamp` no more than five minutes from now (slack_sdk's
SignatureVerifier). Button clicks arrive form-encoded (`payload=<json>`) on the same URL and are
signed the same way.

Conversations: in a channel, a Slack thread is one hub conversation (`<channel>:<thread ts>`; a
top-level message starts its own thread, which the hub's reply opens); a DM is one direct
conversation on the DM channel's id. Message ids are `<channel>:<ts>`, unique within a workspace.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from channels_app.providers.base import (
    FetchedMedia,
    InboundEventPart,
    InboundMessage,
    OutboundMessage,
    Provider,
    RateLimit,
    SendResult,
    content_as_text,
    fetched_media,
    secrets_match,
)
from conversations.content import MAX_CAPTION, MAX_TEXT
from hub.http import (
    ProviderError,
    http_status_error,
    provider_download,
    provider_request,
    retry_after_seconds,
)

# Slack's replay window (slack_sdk SignatureVerifier).
MAX_CLOCK_SKEW_SECONDS = 300
# Plain message subtypes a person sends; the rest are edits, deletions or channel housekeeping.
USER_SUBTYPES = {None, "", "file_share", "thread_broadcast", "me_message"}
IGNORED_SUBTYPES = {
    "bot_message",
    "message_deleted",
    "message_replied",
    "channel_join",
    "channel_leave",
    "channel_topic",
    "channel_purpose",
    "channel_name",
    "channel_archive",
    "channel_unarchive",
    "group_join",
    "group_leave",
    "group_topic",
    "group_purpose",
    "group_name",
    "group_archive",
    "group_unarchive",
    "pinned_item",
    "unpinned_item",
    "ekm_access_denied",
    "channel_posting_permissions",
    "reminder_add",
    "assistant_app_thread",
}
# `ok: false` codes that mean "later", not "never".
TRANSIENT_ERRORS = {
    "ratelimited",
    "rate_limited",
    "service_unavailable",
    "internal_error",
    "fatal_error",
    "request_timeout",
}
ERROR_MESSAGES = {
    "invalid_auth": "The bot token is invalid.",
    "not_authed": "No bot token was sent.",
    "token_revoked": "The bot token was revoked.",
    "account_inactive": "The bot's account or workspace is inactive.",
    "channel_not_found": "The Slack channel does not exist or the bot cannot see it.",
    "not_in_channel": "The bot is not a member of the Slack channel.",
    "is_archived": "The Slack channel is archived.",
    "msg_too_long": "The message is too long for Slack.",
    "no_text": "The message has no text.",
    "invalid_blocks": "Slack refused the message's blocks.",
    "message_not_found": "The message to react to no longer exists.",
    "invalid_name": "Slack does not know this emoji.",
    "ratelimited": "Slack's rate limit was hit.",
}
# Slack names for the emoji people react with most; others are refused, not guessed.
EMOJI_NAMES = {
    "👍": "thumbsup",
    "👎": "thumbsdown",
    "❤": "heart",
    "😂": "joy",
    "😮": "open_mouth",
    "😢": "cry",
    "🙏": "pray",
    "🎉": "tada",
    "✅": "white_check_mark",
    "❌": "x",
    "👀": "eyes",
    "🔥": "fire",
    "😀": "grinning",
    "😊": "blush",
    "👋": "wave",
    "👏": "clap",
    "⭐": "star",
    "🚀": "rocket",
    "💯": "100",
    "🤔": "thinking_face",
    "👌": "ok_hand",
}
# Emoji variation selector and skin tones: Slack's base name covers them.
EMOJI_MODIFIERS = {chr(0xFE0F), *(chr(code) for code in range(0x1F3FB, 0x1F400))}
SECTION_TEXT_LIMIT = 3000
BUTTON_TEXT_LIMIT = 75


def _unescape(text: str) -> str:
    """Slack escapes exactly these three characters in message text."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _is_direct(event: dict[str, Any], channel: str) -> bool:
    channel_type = event.get("channel_type")
    # app_mention and interactivity carry no channel_type; DM channel ids start with D.
    return channel_type == "im" or (not channel_type and channel.startswith("D"))


def _thread(channel: str, direct: bool, thread_ts: str) -> tuple[str, str]:
    """The hub conversation of a Slack message: the DM, or the channel thread."""
    if direct:
        return channel, "direct"
    return f"{channel}:{thread_ts}", "group"


def _own_user_ids(payload: dict[str, Any], config: dict[str, Any]) -> set[str]:
    """The bot's own user ids: from config, else from the envelope's bot authorizations."""
    own = {str(config["bot_user_id"])} if config.get("bot_user_id") else set()
    own.update(
        str(auth["user_id"])
        for auth in payload.get("authorizations") or []
        if auth.get("is_bot") and auth.get("user_id")
    )
    return own


def _from_a_bot(message: dict[str, Any], own_users: set[str]) -> bool:
    """Any bot's message, the hub's own included (its `bot_id`, so a configured `bot_id` needs
    no check of its own), and the hub's bot user posting without one."""
    if message.get("bot_id") or message.get("subtype") == "bot_message":
        return True
    return str(message.get("user", "")) in own_users


def _file_content(file: dict[str, Any]) -> dict[str, Any]:
    mime_type = str(file.get("mimetype") or "")
    major = mime_type.split("/", 1)[0]
    kind = major if major in {"image", "video", "audio"} else "document"
    content: dict[str, Any] = {"type": kind, "media_id": str(file["id"])}
    # url_private needs the bot token (`Authorization: Bearer`) to download.
    if file.get("url_private"):
        content["url"] = file["url_private"]
    if file.get("name"):
        content["filename"] = file["name"]
    if mime_type:
        content["mime_type"] = mime_type
    if kind == "audio" and file.get("subtype") == "slack_audio":
        content["voice"] = True
    return content


def _message_parts(
    event: dict[str, Any], *, external_id: str, thread_id: str, conversation_type: str
) -> list[InboundMessage]:
    """A person's message: its text and its files as media. The first part keeps the message's
    id, so an edit or a reaction finds it; a subtype the hub does not know is unsupported."""
    message_id = f"{event['channel']}:{event['ts']}"
    text = _unescape(str(event.get("text") or ""))
    parts: list[tuple[dict[str, Any], str]] = []
    if event.get("type") == "message" and event.get("subtype") not in USER_SUBTYPES:
        description = f"slack message {event.get('subtype')}"
        parts.append(({"type": "unsupported", "description": description, "raw": event}, ""))
    else:
        files = [f for f in event.get("files") or [] if isinstance(f, dict) and f.get("id")]
        media = [(_file_content(file), f":file:{file['id']}") for file in files]
        if media and text and len(text) <= MAX_CAPTION:
            media[0][0]["caption"] = text
        elif text:
            parts.append(({"type": "text", "text": text[:MAX_TEXT]}, ""))
        parts.extend(media)
    if not parts:
        # Only attachments or blocks (a shared message, a workflow form): nothing canonical.
        parts.append(({"type": "unsupported", "description": "slack message", "raw": event}, ""))
    return [
        InboundMessage(
            external_id=external_id,
            content=content,
            provider_message_id=message_id if index == 0 else f"{message_id}{suffix}",
            thread_id=thread_id,
            conversation_type=conversation_type,
        )
        for index, (content, suffix) in enumerate(parts)
    ]


def _edit(event: dict[str, Any], own_users: set[str]) -> list[InboundMessage]:
    changed = event.get("message") or {}
    previous = event.get("previous_message") or {}
    # Without `edited` the change is Slack's own (a link unfurled), not the person's.
    if _from_a_bot(changed, own_users) or not changed.get("edited"):
        return []
    text = _unescape(str(changed.get("text") or ""))
    user = changed.get("user")
    original_ts = changed.get("ts") or previous.get("ts")
    if not text or not user or not original_ts:
        return []
    channel = str(event["channel"])
    thread_id, conversation_type = _thread(
        channel, _is_direct(event, channel), str(changed.get("thread_ts") or original_ts)
    )
    original = f"{channel}:{original_ts}"
    edited_at = changed["edited"].get("ts") or event.get("ts", "")
    return [
        InboundMessage(
            external_id=str(user),
            content={"type": "text", "text": text[:MAX_TEXT], "edited": True},
            provider_message_id=f"{original}:edit:{edited_at}",
            thread_id=thread_id,
            conversation_type=conversation_type,
            edit_of=original,
        )
    ]


def _event_parts(payload: dict[str, Any], config: dict[str, Any]) -> list[InboundEventPart]:
    event = payload.get("event") or {}
    own_users = _own_user_ids(payload, config)
    kind = event.get("type")
    if kind == "message" and event.get("subtype") == "message_changed":
        return list(_edit(event, own_users))
    # Without a person, a channel and a ts the event is no one's message (team_join,
    # channel_created, a deletion, housekeeping): nothing for a conversation.
    if not (event.get("user") and event.get("channel") and event.get("ts")):
        return []
    if event.get("subtype") in IGNORED_SUBTYPES or _from_a_bot(event, own_users):
        return []
    channel = str(event["channel"])
    thread_id, conversation_type = _thread(
        channel, _is_direct(event, channel), str(event.get("thread_ts") or event["ts"])
    )
    if kind not in {"message", "app_mention"}:
        return [
            InboundMessage(
                external_id=str(event["user"]),
                content={"type": "unsupported", "description": f"slack {kind}", "raw": event},
                provider_message_id=f"{channel}:{event['ts']}",
                thread_id=thread_id,
                conversation_type=conversation_type,
            )
        ]
    # app_mention repeats a message event when both are subscribed: the same `<channel>:<ts>`
    # id makes the second a no-op.
    return list(
        _message_parts(
            event,
            external_id=str(event["user"]),
            thread_id=thread_id,
            conversation_type=conversation_type,
        )
    )


def _action_choice(action: dict[str, Any]) -> tuple[str, str] | None:
    """(id, title) of a clicked button or a picked option; None for other elements."""
    option = action.get("selected_option")
    if action.get("type") == "button":
        title = str((action.get("text") or {}).get("text") or "")
        choice_id = str(action.get("value") or action.get("action_id") or "")
    elif isinstance(option, dict):
        title = str((option.get("text") or {}).get("text") or "")
        choice_id = str(option.get("value") or "")
    else:
        return None
    return choice_id, title or choice_id


def _interaction_parts(payload: dict[str, Any]) -> list[InboundEventPart]:
    """A click on one of the hub's buttons: the choice, as text, in the message's thread."""
    user = payload.get("user") or {}
    container = payload.get("container") or {}
    message = payload.get("message") or {}
    channel = str(container.get("channel_id") or (payload.get("channel") or {}).get("id") or "")
    message_ts = str(container.get("message_ts") or message.get("ts") or "")
    if not user.get("id") or not channel:
        return []
    thread_ts = message.get("thread_ts") or container.get("thread_ts") or message_ts
    thread_id, conversation_type = _thread(channel, _is_direct({}, channel), str(thread_ts))
    parts: list[InboundEventPart] = []
    for action in payload.get("actions") or []:
        choice = _action_choice(action)
        content: dict[str, Any]
        if choice is None or not choice[0]:
            content = {
                "type": "unsupported",
                "description": f"slack {action.get('type', 'action')}",
                "raw": action,
            }
        else:
            choice_id, title = choice
            content = {
                "type": "text",
                "text": title[:MAX_TEXT],
                "choice": {"id": choice_id[:200], "title": title[:200]},
            }
            if message_ts:
                content["reply_to"] = f"{channel}:{message_ts}"
        parts.append(
            InboundMessage(
                external_id=str(user["id"]),
                name=str(user.get("name") or user.get("username") or ""),
                content=content,
                provider_message_id=f"action:{channel}:{action.get('action_ts', '')}",
                thread_id=thread_id,
                conversation_type=conversation_type,
            )
        )
    return parts


def _channel_and_thread(message: OutboundMessage) -> tuple[str, str]:
    """Where to post: the conversation's channel and thread, else the contact's DM (Slack opens
    the app's DM with a user when given the user id as the channel)."""
    if message.thread_id:
        channel, _, thread_ts = message.thread_id.partition(":")
        return channel, thread_ts
    return message.recipient, ""


def _choice_blocks(content: dict[str, Any]) -> list[dict[str, Any]]:
    text = _escape(content["text"])
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[i : i + SECTION_TEXT_LIMIT]}}
        for i in range(0, len(text), SECTION_TEXT_LIMIT)
    ]
    sections = content.get("sections") or [{"rows": content.get("buttons", [])}]
    index = 0
    for number, section in enumerate(sections):
        if section.get("title"):
            blocks.append(
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"*{_escape(section['title'])}*"},
                }
            )
        elements = []
        for row in section["rows"]:
            elements.append(
                {
                    "type": "button",
                    "action_id": f"hub_choice_{index}",
                    "text": {"type": "plain_text", "text": row["title"][:BUTTON_TEXT_LIMIT]},
                    "value": row["id"],
                }
            )
            index += 1
        blocks.append(
            {"type": "actions", "block_id": f"hub_choices_{number}", "elements": elements}
        )
    return blocks


def _post_body(message: OutboundMessage) -> dict[str, Any]:
    content = message.content
    kind = content["type"]
    channel, thread_ts = _channel_and_thread(message)
    body: dict[str, Any] = {"channel": channel}
    if thread_ts:
        body["thread_ts"] = thread_ts
    if kind in {"buttons", "list"}:
        # `text` is the fallback for notifications and clients that show no blocks.
        body["text"] = _escape(content_as_text(content))
        body["blocks"] = _choice_blocks(content)
        return body
    if kind not in {"text", "image", "audio", "video", "document", "location"}:
        raise ProviderError(
            code="unsupported_content", message=f"Slack cannot send {kind}.", transient=False
        )
    # Media go as links (Slack unfurls them); uploading files is not implemented.
    text = content_as_text(content, message.media_urls)
    if not text:
        raise ProviderError(
            code="unsupported_content",
            message=f"This {kind} has no link Slack could show.",
            transient=False,
        )
    body["text"] = _escape(text)
    return body


def _emoji_name(emoji: str) -> str | None:
    if len(emoji) > 2 and emoji.startswith(":") and emoji.endswith(":"):
        return emoji.strip(":")
    base = "".join(character for character in emoji if character not in EMOJI_MODIFIERS)
    return EMOJI_NAMES.get(base)


def _reaction_body(message: OutboundMessage) -> dict[str, Any]:
    content = message.content
    name = _emoji_name(str(content.get("emoji") or ""))
    if not name:
        raise ProviderError(
            code="unsupported_emoji",
            message=f"No Slack name is known for the emoji {content.get('emoji')!r}.",
            transient=False,
        )
    channel, _, ts = str(content["message_id"]).partition(":")
    if not ts:
        raise ProviderError(
            code="invalid_message_id",
            message="A Slack message id is <channel>:<ts>.",
            transient=False,
        )
    return {"channel": channel, "timestamp": ts, "name": name}


def _is_slack_host(url: str) -> bool:
    """Slack's own hosts, or the host HUB_SLACK_API_URL points at (a proxy, a test server)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and (host == "slack.com" or host.endswith(".slack.com")):
        return True
    configured = urlsplit(settings.HUB_SLACK_API_URL)
    return bool(host) and (parts.scheme, parts.netloc) == (configured.scheme, configured.netloc)


def slack_error(response: Any) -> ProviderError:
    """Reads a Slack Web API failure: HTTP 429 (with Retry-After) and server trouble are
    transient; `ok: false` is permanent unless its code says otherwise."""
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "error" not in answer:
        return http_status_error(
            response, code=str(response.status_code), message=str(response.reason)
        )
    code = str(answer["error"])
    details = (answer.get("response_metadata") or {}).get("messages") or []
    message = ERROR_MESSAGES.get(code, f"Slack answered {code}.")
    if details:
        message = f"{message} {' '.join(str(d) for d in details)}"
    return ProviderError(
        code=code,
        message=message,
        transient=code in TRANSIENT_ERRORS
        or response.status_code == 429
        or response.status_code >= 500,
        retry_after=retry_after_seconds(response),
    )


class Slack(Provider):
    """Slack Events API and interactivity in, Web API out."""

    name = "slack"
    content_types = ("application/json", "application/x-www-form-urlencoded")

    def verify(self, *, request: HttpRequest, body: bytes, config: dict[str, Any]) -> bool:
        secret = str(config.get("signing_secret", ""))
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not secret or not timestamp.isdigit() or not signature.startswith("v0="):
            return False
        # A replayed request, however well signed, is refused.
        if abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
            return False
        base = b"v0:" + timestamp.encode() + b":" + body
        expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
        return secrets_match(expected, signature)

    def decode(self, *, body: bytes) -> Any:
        """Events come as JSON; interactivity as a form whose `payload` field is the JSON."""
        if body.lstrip().startswith(b"{"):
            return super().decode(body=body)
        fields = parse_qs(body.decode("utf-8", errors="strict"), strict_parsing=True)
        if "payload" not in fields:
            raise ValueError("the form has no payload field")
        payload = json.loads(fields["payload"][0])
        if not isinstance(payload, dict):
            raise ValueError("the payload is not a JSON object")
        return payload

    def immediate_response(self, *, payload: Any) -> HttpResponse | None:
        if payload.get("type") == "url_verification":
            return JsonResponse({"challenge": str(payload.get("challenge", ""))})
        return None

    def event_id(self, *, payload: Any, body: bytes) -> str:
        kind = payload.get("type")
        if kind == "event_callback":
            # The same on every retry (X-Slack-Retry-Num), so a redelivery is stored once.
            return f"event:{payload['event_id']}"
        if kind == "url_verification":
            return "url_verification"
        if kind == "block_actions" and payload.get("trigger_id"):
            return f"action:{payload['trigger_id']}"
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def acknowledge(self) -> HttpResponse:
        # Slack reads nothing from the body, and an interactivity answer with one could be
        # taken as a message replacement.
        return HttpResponse(status=200)

    def parse(self, *, payload: Any, config: dict[str, Any]) -> list[InboundEventPart]:
        kind = payload.get("type")
        if kind == "event_callback":
            return _event_parts(payload, config)
        if kind == "block_actions":
            return _interaction_parts(payload)
        # Other interactions (shortcuts, modals) and envelopes (app_rate_limited) carry no
        # message for a conversation.
        return []

    def send(self, *, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        reaction = message.content["type"] == "reaction"
        body = _reaction_body(message) if reaction else _post_body(message)
        method = "reactions.add" if reaction else "chat.postMessage"
        response = provider_request(
            "POST",
            f"{settings.HUB_SLACK_API_URL}/{method}",
            json=body,
            headers={
                "Authorization": f"Bearer {config['bot_token']}",
                "Content-Type": "application/json; charset=utf-8",
            },
        )
        if response.status_code != 200:
            raise slack_error(response)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if not isinstance(answer, dict) or not answer.get("ok"):
            # A retried reaction that already landed is done, not failed.
            if reaction and isinstance(answer, dict) and answer.get("error") == "already_reacted":
                return SendResult(provider_message_id="")
            raise slack_error(response)
        if reaction:
            return SendResult(provider_message_id="")
        return SendResult(provider_message_id=f"{answer['channel']}:{answer['ts']}")

    def fetch_media(
        self, *, content: dict[str, Any], config: dict[str, Any], max_bytes: int
    ) -> FetchedMedia:
        """`url_private` (or, when the event gave none, `files.info`'s) downloaded with the bot
        token. The token goes to Slack's hosts only, and a token Slack does not accept for the
        file gets its sign-in page with a 200, which is refused rather than stored."""
        token = str(config["bot_token"])
        headers = {"Authorization": f"Bearer {token}"}
        url = str(content.get("url") or "") or self._file_url(content, headers)
        if not _is_slack_host(url):
            raise ProviderError(
                code="untrusted_url",
                message="The file URL is not on Slack's hosts; the bot token is not sent there.",
                transient=False,
            )
        download = provider_download(url, max_bytes=max_bytes, headers=headers)
        declared = str(content.get("mime_type") or "")
        if download.content_type.startswith("text/html") and not declared.startswith("text/html"):
            raise ProviderError(
                code="not_authorized",
                message="Slack answered with its sign-in page: the bot token cannot read this "
                "file (the files:read scope is needed).",
                transient=False,
            )
        return fetched_media(download, content)

    def _file_url(self, content: dict[str, Any], headers: dict[str, str]) -> str:
        file_id = str(content.get("media_id") or "")
        if not file_id:
            raise ProviderError(
                code="no_media_id", message="The message names no Slack file.", transient=False
            )
        response = provider_request(
            "GET",
            f"{settings.HUB_SLACK_API_URL}/files.info",
            params={"file": file_id},
            headers=headers,
        )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code != 200 or not isinstance(answer, dict) or not answer.get("ok"):
            raise slack_error(response)
        file = answer.get("file") or {}
        return str(file.get("url_private_download") or file.get("url_private") or "")

    def rate_limits(self, *, message: OutboundMessage, config: dict[str, Any]) -> list[RateLimit]:
        if message.content.get("type") == "reaction":
            # reactions.add is a Tier 3 method: about 50 a minute per workspace.
            return [RateLimit(scope="reactions", capacity=50, per_seconds=60)]
        # chat.postMessage: one message a second per channel, with short bursts allowed.
        channel, _ = _channel_and_thread(message)
        return [RateLimit(scope=f"channel:{channel}", capacity=3, per_seconds=3)]
