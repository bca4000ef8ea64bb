"""The bridge from domain events to live sockets (Channels groups), for the web chat and the
operator inbox. Group names carry the schema, so one tenant's socket never joins another's.

- `conversation_group(schema, id)`: every event about one conversation (messages, its state).
- `inbox_group(schema)`: every event of the tenant, for operators' inbox lists.
Each group message is `{"type": "hub.event", "event": <name>, "payload": <the API shape>}`.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def conversation_group(schema: str, conversation_id: str) -> str:
    return f"{schema}.conversation.{conversation_id}"


def inbox_group(schema: str) -> str:
    return f"{schema}.inbox"


def _conversation_of(name: str, payload: dict[str, Any]) -> str | None:
    if name.startswith("message."):
        return str(payload.get("conversation") or "") or None
    if name.startswith("conversation."):
        return str(payload.get("id") or "") or None
    if name.startswith("notification."):
        return str(payload.get("conversation") or "") or None
    return None


def on_event(schema: str, name: str, payload: dict[str, Any]) -> None:
    """Sends the event to its conversation's group and the tenant's inbox group. A dead Redis
    loses only the live push: sockets replay from the database when they resume."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "hub.event", "event": name, "payload": payload}
    groups = [inbox_group(schema)]
    conversation_id = _conversation_of(name, payload)
    if conversation_id:
        groups.append(conversation_group(schema, conversation_id))
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception as error:
            logger.warning("live push failed", extra={"event": name, "error": type(error).__name__})
