"""Twilio Programmable Messaging: SMS/MMS (kind `sms`) and WhatsApp through Twilio (kind
`whatsapp`, config `provider: twilio`).

Webhooks are form-encoded. Signature: `X-Twilio-Signature` = Base64(HMAC-SHA1(auth token, the
URL Twilio called + every POST parameter sorted by name as name+value)). Twilio signs the public
URL it was given, so the URL is rebuilt from HUB_PUBLIC_URL, not from what a proxy forwarded.
Inbound messages and status callbacks arrive on the same URL: the send API names the channel's
webhook as the StatusCallback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse

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
    secrets_match,
)
from conversations.content import MAX_CAPTION
from conversations.models import Message
from hub.http import ProviderError, provider_download, provider_request, retry_after_seconds
from tenants.connection import tenant_connection

Form = dict[str, list[str]]

TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
DEFAULT_PORTS = {"https": 443, "http": 80}
# Twilio's statuses with a canonical meaning; queued, sending, accepted, scheduled (still
# pending), receiving, received (inbound) and partially_delivered are ignored.
STATUSES = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}
# What operators read when a callback gives a code but no ErrorMessage.
ERROR_TEXTS = {
    "21211": "The recipient's number is not valid.",
    "21610": "The recipient has unsubscribed (replied STOP).",
    "21614": "The recipient's number is not a mobile number.",
    "30003": "The recipient's handset is unreachable.",
    "30004": "The message was blocked.",
    "30005": "The recipient's number is unknown or no longer in service.",
    "30006": "The recipient's number is a landline or its carrier is unreachable.",
    "30007": "The carrier filtered the message.",
    "30008": "Unknown error.",
    "63016": "The WhatsApp 24-hour window has closed; only a template can be sent.",
    "63018": "The WhatsApp sender's rate limit was exceeded.",
}
# HTTP 429 / 20429 (too many concurrent requests) and server trouble are worth retrying.
TRANSIENT_CODES = {20429}
MEDIA_KINDS = {"image", "audio", "video", "document"}


def twilio_signature(*, auth_token: str, url: str, params: Mapping[str, list[str]]) -> str:
    """Twilio's request signature: the URL, then each parameter name with each of its values
    (values sorted and de-duplicated, as twilio-python's RequestValidator does)."""
    data = url + "".join(
        name + value for name in sorted(params) for value in sorted(set(params[name]))
    )
    digest = hmac.new(auth_token.encode(), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def url_variants(url: str) -> list[str]:
    """The URL as given, with the scheme's default port added when it has none, and without
    its port: Twilio may sign either form (twilio-python's RequestValidator tries both)."""
    parts = urlsplit(url)
    if parts.port is not None:
        host = parts.netloc.rsplit(":", 1)[0]
        return [url, urlunsplit(parts._replace(netloc=host))]
    default = DEFAULT_PORTS.get(parts.scheme)
    if default is None:
        return [url]
    return [url, urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}"))]


def _form(body: bytes) -> Form:
    # Blank values are kept: Twilio signs them too (`ToCity` is often empty).
    return parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)


def _one(payload: Form, name: str) -> str:
    values = payload.get(name) or [""]
    return values[0]


def _flat(payload: Form) -> dict[str, Any]:
    """The form as JSON-friendly data, for `unsupported` content."""
    return {name: values[0] if len(values) == 1 else values for name, values in payload.items()}


def _is_status_callback(payload: Form) -> bool:
    # Inbound messages carry SmsStatus=received and, on newer webhooks, MessageStatus=received.
    status = _one(payload, "MessageStatus")
    return bool(status) and status not in {"received", "receiving"}


def _media_kind(mime_type: str) -> str:
    major = mime_type.split("/", 1)[0]
    return major if major in {"image", "audio", "video"} else "document"


def _error(response: Any) -> ProviderError:
    """Reads Twilio's error body, classic `{code, message, more_info, status}` or RFC 9457
    `{type, title, status, code, detail}`."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    code = body.get("code")
    message = body.get("message") or body.get("detail") or body.get("title") or response.reason
    transient = (
        response.status_code == 429 or response.status_code >= 500 or code in TRANSIENT_CODES
    )
    return ProviderError(
        code=str(code or response.status_code),
        message=str(message or f"HTTP {response.status_code}"),
        transient=transient,
        retry_after=retry_after_seconds(response),
    )


class Twilio(Provider):
    """Twilio's Messages API. Subclasses say how an address is written (`whatsapp:` or not)."""

    name = "sms"
    content_types = ("application/x-www-form-urlencoded",)
    prefix = ""
    # Twilio's published throughput per sender when the channel config names none.
    default_messages_per_second = 1.0

    # Inbound

    def verify(self, *, request: HttpRequest, body: bytes, config: dict[str, Any]) -> bool:
        header = request.headers.get("X-Twilio-Signature", "")
        token = str(config.get("auth_token", ""))
        if not header or not token:
            return False
        try:
            params = _form(body)
        except ValueError:
            return False
        # path_info, as Channel.webhook_url builds it: the URL the provider was given.
        url = f"{settings.HUB_PUBLIC_URL}{request.get_full_path_info()}"
        matches = [
            secrets_match(twilio_signature(auth_token=token, url=variant, params=params), header)
            for variant in url_variants(url)
        ]
        return any(matches)

    def decode(self, *, body: bytes) -> Form:
        payload = _form(body)
        if not payload:
            raise ValueError("the body has no form fields")
        return payload

    def event_id(self, *, payload: Any, body: bytes) -> str:
        sid = _one(payload, "MessageSid") or _one(payload, "SmsSid")
        if not sid:
            raise KeyError("MessageSid")
        if _is_status_callback(payload):
            return f"{sid}:{_one(payload, 'MessageStatus')}"
        return sid

    def acknowledge(self) -> HttpResponse:
        # Twilio expects TwiML from the incoming-message webhook; an empty Response sends nothing.
        return HttpResponse(TWIML_EMPTY, content_type="text/xml")

    def address(self, value: str) -> str:
        """An address as the hub stores it: without the channel prefix (`whatsapp:`)."""
        return value.removeprefix(f"{self.prefix}:") if self.prefix else value

    def parse(self, *, payload: Any, config: dict[str, Any]) -> list[InboundEventPart]:
        sid = _one(payload, "MessageSid") or _one(payload, "SmsSid")
        if _is_status_callback(payload):
            return self._status(payload, sid)
        sender = self.address(_one(payload, "From"))
        profile = {"phone": sender} if sender.startswith("+") else {}

        def part(content: dict[str, Any], message_id: str) -> InboundMessage:
            return InboundMessage(
                external_id=sender,
                name=_one(payload, "ProfileName"),
                content=content,
                provider_message_id=message_id,
                profile=profile,
            )

        return [part(content, message_id) for content, message_id in _contents(payload, sid)]

    def _status(self, payload: Form, sid: str) -> list[InboundEventPart]:
        twilio_status = _one(payload, "MessageStatus")
        status = STATUSES.get(twilio_status)
        if status is None:
            return []
        error_code = _one(payload, "ErrorCode")
        error_message = ""
        if status == "failed":
            error_code = error_code or twilio_status
            error_message = (
                _one(payload, "ErrorMessage")
                or ERROR_TEXTS.get(error_code, "")
                or f"Twilio reported the message {twilio_status}."
            )
        return [
            StatusUpdate(
                provider_message_id=sid,
                status=status,
                error_code=error_code if status == "failed" else "",
                error_message=error_message,
            )
        ]

    # Outbound

    def send(self, *, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        fields = self._fields(message, config)
        response = provider_request(
            "POST",
            f"{settings.HUB_TWILIO_API_URL}/2010-04-01/Accounts/{config['account_sid']}"
            "/Messages.json",
            data=fields,
            auth=(str(config["account_sid"]), str(config["auth_token"])),
        )
        if not 200 <= response.status_code < 300:
            raise _error(response)
        try:
            sid = response.json()["sid"]
        except (ValueError, KeyError, TypeError) as error:
            raise ProviderError(
                code="malformed_response",
                message="Twilio accepted the message but returned no sid.",
                transient=False,
            ) from error
        return SendResult(provider_message_id=str(sid))

    def _to(self, recipient: str) -> str:
        """An address as Twilio wants it (`whatsapp:+E164` on WhatsApp)."""
        if not self.prefix:
            return recipient
        number = recipient.removeprefix(f"{self.prefix}:")
        if number.isdigit():  # a WhatsApp id (wa_id, as Meta gives it) lacks the plus
            number = f"+{number}"
        return f"{self.prefix}:{number}"

    def _fields(self, message: OutboundMessage, config: dict[str, Any]) -> list[tuple[str, str]]:
        content = message.content
        kind = content["type"]
        fields = [("To", self._to(message.recipient)), ("From", self._to(config["from_number"]))]
        if kind in MEDIA_KINDS:
            urls = [content["url"]] if content.get("url") else list(message.media_urls)
            if not urls:
                raise ProviderError(
                    code="unsupported_content",
                    message="Twilio fetches media by URL; this attachment has none.",
                    transient=False,
                )
            if content.get("caption"):
                fields.append(("Body", content["caption"]))
            fields.extend(("MediaUrl", url) for url in urls)
        elif kind in {"text", "buttons", "list", "location", "reaction"}:
            # Buttons and lists need Twilio's Content API templates (ContentSid), which the hub
            # does not manage: they go as numbered text the contact answers with a number.
            body = content_as_text(content, message.media_urls)
            if not body:
                raise ProviderError(
                    code="unsupported_content",
                    message=f"Twilio cannot send an empty {kind}.",
                    transient=False,
                )
            fields.append(("Body", body))
        else:
            raise ProviderError(
                code="unsupported_content", message=f"Twilio cannot send {kind}.", transient=False
            )
        callback = _status_callback(message)
        if callback:
            fields.append(("StatusCallback", callback))
        return fields

    def fetch_media(
        self, *, content: dict[str, Any], config: dict[str, Any], max_bytes: int
    ) -> FetchedMedia:
        """The MediaUrl, with the account's credentials when it is Twilio's API (accounts may
        require HTTP auth for media). Twilio redirects it to a short-lived storage URL, which
        gets no credentials: requests drops them when a redirect leaves the host."""
        url = str(content.get("url") or "")
        if not url:
            raise ProviderError(
                code="no_media_url", message="The message names no media URL.", transient=False
            )
        auth = None
        if url.startswith(f"{settings.HUB_TWILIO_API_URL}/"):
            auth = (str(config["account_sid"]), str(config["auth_token"]))
        download = provider_download(url, max_bytes=max_bytes, auth=auth)
        return fetched_media(download, content)

    def rate_limits(self, *, message: OutboundMessage, config: dict[str, Any]) -> list[RateLimit]:
        rate = config.get("messages_per_second", self.default_messages_per_second)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
            rate = self.default_messages_per_second
        scope = f"sender:{config.get('from_number', '')}"
        if rate >= 1:
            return [RateLimit(scope=scope, capacity=int(rate), per_seconds=1)]
        # Slower than one a second (some toll-free and international senders).
        return [RateLimit(scope=scope, capacity=1, per_seconds=1 / rate)]


class TwilioWhatsApp(Twilio):
    """WhatsApp through Twilio: the same API, addresses written `whatsapp:+E164`."""

    name = "whatsapp:twilio"
    prefix = "whatsapp"
    # Twilio's default outbound throughput per WhatsApp sender.
    default_messages_per_second = 80.0


def _status_callback(message: OutboundMessage) -> str:
    """The channel's webhook URL, so Twilio posts the message's statuses back to it. Sends run
    in the tenant's schema (the delivery task), whose name is the tenant's slug."""
    stored = Message.objects.select_related("channel").filter(pk=message.message_id).first()
    if stored is None:
        return ""
    return stored.channel.webhook_url(tenant_slug=tenant_connection().schema_name)


def _choice(payload: Form) -> dict[str, Any] | None:
    """A tapped quick-reply button (ButtonPayload) or list row (ListId)."""
    for id_field, title_field in (("ButtonPayload", "ButtonText"), ("ListId", "ListTitle")):
        choice_id = _one(payload, id_field)
        if choice_id:
            title = _one(payload, title_field) or _one(payload, "Body") or choice_id
            return {"type": "text", "text": title, "choice": {"id": choice_id, "title": title}}
    return None


def _location(payload: Form) -> dict[str, Any] | None:
    latitude, longitude = _one(payload, "Latitude"), _one(payload, "Longitude")
    if not (latitude and longitude):
        return None
    try:
        location: dict[str, Any] = {
            "type": "location",
            "latitude": float(latitude),
            "longitude": float(longitude),
        }
    except ValueError:
        location = {}
    if not (
        location and -90 <= location["latitude"] <= 90 and -180 <= location["longitude"] <= 180
    ):
        # Out of range or NaN: kept as sent rather than failing the whole event.
        return _unsupported(payload, "twilio location")
    if _one(payload, "Label"):
        location["name"] = _one(payload, "Label")
    if _one(payload, "Address"):
        location["address"] = _one(payload, "Address")
    return location


def _media(payload: Form) -> list[dict[str, Any]]:
    try:
        count = int(_one(payload, "NumMedia") or 0)
    except ValueError:
        count = 0
    media = []
    for index in range(count):
        url = _one(payload, f"MediaUrl{index}")
        if not url:
            continue
        mime_type = _one(payload, f"MediaContentType{index}")
        item: dict[str, Any] = {"type": _media_kind(mime_type), "url": url}
        if mime_type:
            item["mime_type"] = mime_type
        media.append(item)
    return media


def _contents(payload: Form, sid: str) -> list[tuple[dict[str, Any], str]]:
    """Canonical content for one inbound message, with the provider id of each part.

    An MMS or WhatsApp message with several media becomes one hub message per medium, the Body
    being the first one's caption (or a text message of its own when too long for a caption).
    The first part keeps the MessageSid; the others are `<MessageSid>:<position>`.
    """
    body = _one(payload, "Body")
    reply_to = _one(payload, "OriginalRepliedMessageSid")
    contents: list[dict[str, Any]]
    single = _choice(payload) or _location(payload)
    if single is not None:
        contents = [single]
    else:
        contents = _media(payload)
        if contents and body and len(body) <= MAX_CAPTION:
            contents[0]["caption"] = body
        elif body:
            contents.insert(0, {"type": "text", "text": body})
    if not contents:
        contents = [_unsupported(payload, "twilio message")]
    if reply_to and contents[0]["type"] == "text":
        contents[0]["reply_to"] = reply_to
    return [
        (content, sid if position == 0 else f"{sid}:{position}")
        for position, content in enumerate(contents)
    ]


def _unsupported(payload: Form, description: str) -> dict[str, Any]:
    return {"type": "unsupported", "description": description, "raw": _flat(payload)}
