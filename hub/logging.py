"""JSON logs: one object per line, with the request id, and nothing a customer would not want kept.

Secrets and tokens are redacted by field name and by shape; emails and phone numbers are masked
wherever they appear, message text included.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from hub.context import current_request_id

_SECRET_FIELD = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|authorization|cookie|signature|credential|body)",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}")
# International numbers (+ then 7-15 digits, maybe split by spaces or dashes) and bare runs of
# 9-15 digits as providers send them (WhatsApp's wa_id); dates and times stay readable.
_PHONE = re.compile(r"(?<![\w+])(?:\+\d(?:[ -]?\d){6,14}|\d{9,15})(?![\w])")
_BEARER = re.compile(r"(Bearer\s+)[^\s\"']+", re.IGNORECASE)
_API_KEY = re.compile(r"\bhub_[A-Za-z0-9]{6,}_[A-Za-z0-9_-]{16,}")

REDACTED = "[redacted]"
# Written by the logging machinery itself, never from user input.
_TRUSTED_FIELDS = {"time", "level", "logger", "request_id"}


def _mask_phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return f"{'+' if match.group(0).startswith('+') else ''}{'*' * (len(digits) - 2)}{digits[-2:]}"


def mask_text(text: str) -> str:
    text = _BEARER.sub(r"\1" + REDACTED, text)
    text = _API_KEY.sub(REDACTED, text)
    text = _EMAIL.sub(r"\1***@***", text)
    return _PHONE.sub(_mask_phone, text)


def scrub(value: Any, field: str = "") -> Any:
    if field and _SECRET_FIELD.search(field):
        return REDACTED
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {key: scrub(item, str(key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item) for item in value]
    return value


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id()
        return True


class JsonFormatter(_BaseJsonFormatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s")
        kwargs.setdefault(
            "rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"}
        )
        super().__init__(*args, **kwargs)

    def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
        return {
            key: value if key in _TRUSTED_FIELDS else scrub(value, "" if key == "message" else key)
            for key, value in log_record.items()
        }
