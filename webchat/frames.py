"""What a visitor's socket sends, built from the API's event payloads without touching the
database (a push reaches every socket of a conversation; none of them should query for it)."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from webchat.tokens import file_link

# A new message reaches every socket of its conversation in this process: its frame is built and
# encoded once, not once per socket (the sockets bench: 100 sockets per conversation).
_NEW_MESSAGE_FRAMES: OrderedDict[tuple[str, str], str] = OrderedDict()
NEW_MESSAGE_FRAMES_KEPT = 256


def new_message_frame(payload: dict[str, Any], *, schema: str) -> str:
    """The encoded `message` frame of a `message.created` payload. Created once per message, so
    the message's id keys it; only the event loop's thread calls this."""
    key = (schema, str(payload["id"]))
    frame = _NEW_MESSAGE_FRAMES.get(key)
    if frame is None:
        frame = json.dumps({"type": "message", "message": visitor_message(payload, schema=schema)})
        _NEW_MESSAGE_FRAMES[key] = frame
        if len(_NEW_MESSAGE_FRAMES) > NEW_MESSAGE_FRAMES_KEPT:
            _NEW_MESSAGE_FRAMES.popitem(last=False)
    return frame


def visitor_message(payload: dict[str, Any], *, schema: str) -> dict[str, Any]:
    """A message as a visitor sees it: the API's message shape without what is the team's
    business (operator ids, provider ids, errors), and attachments as signed links.

    `sender_name` is the operator's display name for an operator's message, else empty.
    `client_id` is only the visitor's own (the AI's replies carry the hub's internal ones).
    """
    sender = payload.get("sender") or {}
    attachments = [
        {
            "id": str(item["id"]),
            "filename": item.get("filename", ""),
            "content_type": item.get("content_type", ""),
            "size": item.get("size", 0),
            "url": file_link(schema=schema, attachment_id=item["id"]),
        }
        for item in payload.get("attachments") or []
    ]
    return {
        "id": str(payload["id"]),
        "conversation": str(payload["conversation"]),
        "seq": payload["seq"],
        "direction": payload["direction"],
        "sender_type": payload["sender_type"],
        "sender_name": sender.get("name", "") if sender.get("type") == "operator" else "",
        "content": payload.get("content"),
        "status": payload.get("status"),
        "client_id": payload.get("client_id", "") if payload["sender_type"] == "contact" else "",
        "attachments": attachments,
        "deleted_at": payload.get("deleted_at"),
        "created_at": payload.get("created_at"),
    }


def answering_frame(answering: dict[str, Any], *, status: str) -> dict[str, Any]:
    """The `presence` frame that tells a visitor who answers: `who` is `ai` or `operator`,
    `name` the agent's or the operator's (empty while nobody is assigned), `answering` true."""
    return {
        "type": "presence",
        "who": answering["who"],
        "name": answering["name"],
        "status": status,
        "answering": True,
    }
