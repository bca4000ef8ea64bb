"""Turns message events into processing work: a new inbound message drains its conversation.
(A delivered AI reply is charged by the delivery itself: `services.reply_charge_on_sent`.)"""

from __future__ import annotations

from typing import Any

from processing.services import conversation_drain_requested


def on_message_event(schema: str, name: str, payload: dict[str, Any]) -> None:
    if name == "message.created" and payload.get("direction") == "in":
        conversation_drain_requested(schema=schema, conversation_id=payload["conversation"])
