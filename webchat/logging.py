"""Keeps visitor tokens out of the server's logs.

CONTRACT §7 puts the visitor token in the socket URL (`/ws/webchat/?token=…`), and uvicorn logs
every WebSocket handshake with its path on `uvicorn.error`, access log or not. This filter
blanks the token in those records before any handler sees them.
"""

from __future__ import annotations

import logging
import re

TOKEN = re.compile(r"(token=)[^&\s\"']+")
SERVER_LOGGERS = ("uvicorn.error", "uvicorn.access", "gunicorn.access", "gunicorn.error")


def redact(value: object) -> object:
    return TOKEN.sub(r"\1[redacted]", value) if isinstance(value, str) else value


class RedactVisitorTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) for arg in record.args)
        return True


def redaction_install() -> None:
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactVisitorTokens) for f in logger.filters):
            logger.addFilter(RedactVisitorTokens())
