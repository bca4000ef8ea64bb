"""Signed values the web chat hands to browsers: the visitor token and attachment links.

Both are `django.core.signing` values with a salt per purpose, so a file link can never be
replayed as a visitor token or the other way round. Neither is stored: the signature is the proof.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core import signing

VISITOR_SALT = "hub.webchat.visitor"
FILE_SALT = "hub.webchat.file"


def visitor_token_max_age() -> int:
    """Seconds a visitor token stays valid; each session call issues a fresh one, so only a
    visitor away for longer than this starts over."""
    return int(getattr(settings, "HUB_WEBCHAT_TOKEN_MAX_AGE_SECONDS", 30 * 24 * 3600))


def file_link_max_age() -> int:
    return int(getattr(settings, "HUB_WEBCHAT_FILE_LINK_MAX_AGE_SECONDS", 7 * 24 * 3600))


@dataclass(frozen=True)
class VisitorClaims:
    """Who a visitor token speaks for: the tenant (schema), the channel, the visitor id (the
    contact's `webchat` identity) and the conversation."""

    schema: str
    channel_id: uuid.UUID
    visitor_id: str
    conversation_id: uuid.UUID


def visitor_token_issue(claims: VisitorClaims) -> str:
    return signing.dumps(
        {
            "s": claims.schema,
            "ch": str(claims.channel_id),
            "v": claims.visitor_id,
            "cv": str(claims.conversation_id),
        },
        salt=VISITOR_SALT,
        compress=True,
    )


def visitor_token_read(token: str | None) -> VisitorClaims | None:
    """The claims of a genuine, unexpired token; None for anything else (forged, expired,
    malformed), without saying which."""
    if not token or len(token) > 1000:
        return None
    try:
        data = signing.loads(token, salt=VISITOR_SALT, max_age=visitor_token_max_age())
        return VisitorClaims(
            schema=str(data["s"]),
            channel_id=uuid.UUID(data["ch"]),
            visitor_id=str(data["v"]),
            conversation_id=uuid.UUID(data["cv"]),
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None


def file_link(*, schema: str, attachment_id: uuid.UUID | str) -> str:
    """A path (relative to the hub) that serves one attachment to whoever holds it: an `<img>`
    cannot send a header, and the visitor token must not end up in URLs."""
    signed = signing.dumps({"s": schema, "a": str(attachment_id)}, salt=FILE_SALT)
    return f"/webchat/{schema}/files/{signed}/"


def file_link_read(*, schema: str, signed: str) -> uuid.UUID | None:
    try:
        data = signing.loads(signed, salt=FILE_SALT, max_age=file_link_max_age())
        if data["s"] != schema:
            return None
        return uuid.UUID(data["a"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
