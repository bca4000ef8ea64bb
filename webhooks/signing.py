"""Signing secrets and the `X-Hub-Signature-256` header (the scheme GitHub and Meta use)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "X-Hub-Signature-256"
SECRET_MIN_LENGTH = 16


def webhook_secret_generate() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def webhook_signature(*, secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the exact body bytes>`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
