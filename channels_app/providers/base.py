"""The one interface every provider adapter implements, and the canonical events they produce."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict

from hub.http import Download, ProviderError


@dataclass(frozen=True)
class InboundFile:
    """A file carried in the event itself (an email attachment), not left at the provider: the
    hub stores it as an Attachment of the conversation and names it in the content."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class InboundMessage:
    """A message a contact sent, in canonical content."""

    external_id: str
    content: dict[str, Any]
    provider_message_id: str
    name: str = ""
    thread_id: str = ""
    conversation_type: str = "direct"
    # For an edit: the provider id of the message that changed.
    edit_of: str = ""
    profile: dict[str, str] = field(default_factory=dict)
    # Media content without a url or media_id: the file, stored and named as `attachment_id`.
    file: InboundFile | None = None


@dataclass(frozen=True)
class StatusUpdate:
    """What became of a message the hub sent."""

    provider_message_id: str
    status: str
    error_code: str = ""
    error_message: str = ""


InboundEventPart = InboundMessage | StatusUpdate


@dataclass(frozen=True)
class OutboundMessage:
    """A message for a contact, in canonical content, with where the provider should send it."""

    message_id: str
    recipient: str
    thread_id: str
    content: dict[str, Any]
    # Absolute URLs of the message's attachments, for providers that fetch media by link.
    media_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str


@dataclass(frozen=True)
class FetchedMedia:
    """A media message's file, downloaded from the provider."""

    data: bytes
    # The provider's type for it; empty or generic when it gave none worth keeping.
    content_type: str
    filename: str = ""


@dataclass(frozen=True)
class RateLimit:
    """A provider's published sending rate: `capacity` per `per_seconds`, per `scope`
    (the channel's account, or one chat within it)."""

    scope: str
    capacity: int
    per_seconds: float


class WebhookRejected(Exception):
    """A webhook request refused before anything is stored."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class Provider:
    """One provider's webhook and API, behind the interface the hub uses for every channel."""

    name: ClassVar[str]
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)

    def handshake(self, *, params: QueryDict, config: dict[str, Any]) -> HttpResponse:
        """Answers a GET on the webhook URL (a subscription check)."""
        raise WebhookRejected(405, "method_not_allowed", "This provider makes no handshake.")

    def verify(self, *, request: HttpRequest, body: bytes, config: dict[str, Any]) -> bool:
        raise NotImplementedError

    def decode(self, *, body: bytes) -> Any:
        """The body as data; raises ValueError for a malformed one."""
        import json

        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("the body is not a JSON object")
        return payload

    def immediate_response(self, *, payload: Any) -> HttpResponse | None:
        """A request answered at once and never stored (Slack's url_verification)."""
        return None

    def event_id(self, *, payload: Any, body: bytes) -> str:
        raise NotImplementedError

    def parse(self, *, payload: Any, config: dict[str, Any]) -> list[InboundEventPart]:
        raise NotImplementedError

    def acknowledge(self) -> HttpResponse:
        return JsonResponse({"status": "ok"})

    def send(self, *, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        """Sends one message; raises hub.http.ProviderError (transient or permanent)."""
        raise NotImplementedError

    def rate_limits(self, *, message: OutboundMessage, config: dict[str, Any]) -> list[RateLimit]:
        return []

    def fetch_media(
        self, *, content: dict[str, Any], config: dict[str, Any], max_bytes: int
    ) -> FetchedMedia:
        """Downloads the file an inbound media message names (its `media_id` or the provider's
        `url`), reading at most `max_bytes` of it (hub.http.ResponseTooLarge past that).
        Raises hub.http.ProviderError, transient or permanent, like `send`."""
        raise ProviderError(
            code="no_media_fetch",
            message=f"The hub cannot download {self.name} media.",
            transient=False,
        )


def secrets_match(expected: str | bytes, given: str | bytes) -> bool:
    """Constant-time comparison for signatures and tokens."""
    if isinstance(expected, str):
        expected = expected.encode()
    if isinstance(given, str):
        given = given.encode()
    return bool(expected) and hmac.compare_digest(expected, given)


def content_as_text(content: dict[str, Any], media_urls: tuple[str, ...] = ()) -> str:
    """Canonical content as plain text, for channels without buttons, lists or media: choices
    become a numbered list the contact can answer with a number."""
    kind = content.get("type")
    if kind == "text":
        return str(content["text"])
    if kind in {"buttons", "list"}:
        choices = content.get("buttons") or [
            row for section in content.get("sections", []) for row in section["rows"]
        ]
        lines = [f"{index}. {choice['title']}" for index, choice in enumerate(choices, start=1)]
        return "\n".join([content["text"], "", *lines])
    if kind == "location":
        place = ", ".join(filter(None, [content.get("name"), content.get("address")]))
        coordinates = f"{content['latitude']},{content['longitude']}"
        return f"{place} https://maps.google.com/?q={coordinates}".strip()
    if kind == "reaction":
        return str(content.get("emoji", ""))
    parts = [content.get("caption", ""), *media_urls, content.get("url", "")]
    return "\n".join(part for part in parts if part)


def fetched_media(
    download: Download, content: dict[str, Any], *, filename: str = ""
) -> FetchedMedia:
    """A download as the message's file. The message's own type and name, from the provider's
    event, win over what the file server says (often `application/octet-stream` and a storage
    key); `filename` is the adapter's fallback, such as the last part of the file's path."""
    return FetchedMedia(
        data=download.data,
        content_type=str(content.get("mime_type") or download.content_type),
        filename=str(content.get("filename") or download.filename or filename),
    )
