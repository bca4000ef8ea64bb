"""Domain events (`message.created`, `conversation.updated`, …) published after commit.

Services publish; subscribers (outgoing webhooks, the live inbox) register in their app's
`ready()`. A subscriber that fails is logged and never undoes the write that raised the event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

from tenants.connection import tenant_connection

logger = logging.getLogger(__name__)

Subscriber = Callable[[str, str, dict[str, Any]], None]
_subscribers: list[Subscriber] = []


def event_subscribe(subscriber: Subscriber) -> None:
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def event_publish(*, name: str, payload: dict[str, Any]) -> None:
    """Hands `payload` to every subscriber with the current schema, once the transaction commits."""
    schema = tenant_connection().schema_name

    def deliver() -> None:
        for subscriber in _subscribers:
            try:
                subscriber(schema, name, payload)
            except Exception:
                logger.exception("event subscriber failed", extra={"event": name})

    transaction.on_commit(deliver)
