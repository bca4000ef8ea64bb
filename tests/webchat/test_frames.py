"""The visitor's `message` frame for a new message, built once per process and message."""

from __future__ import annotations

import json
import uuid

from webchat.frames import NEW_MESSAGE_FRAMES_KEPT, new_message_frame, visitor_message


def _payload(**fields: object) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "conversation": str(uuid.uuid4()),
        "seq": 3,
        "direction": "outbound",
        "sender_type": "operator",
        "sender": {"type": "operator", "name": "Ana"},
        "content": {"type": "text", "text": "hello"},
        "status": "sent",
        "client_id": "internal",
        "attachments": [],
        "deleted_at": None,
        "created_at": "2026-11-22T06:00:00Z",
        **fields,
    }


def test_the_frame_is_the_visitor_shape_encoded_once_per_message() -> None:
    payload = _payload()
    frame = new_message_frame(payload, schema="tenant_a")
    assert json.loads(frame) == {
        "type": "message",
        "message": visitor_message(payload, schema="tenant_a"),
    }
    # Every socket of the conversation gets the same encoded text.
    assert new_message_frame(dict(payload), schema="tenant_a") is frame
    # Another tenant's message with the same id is its own frame.
    other = new_message_frame({**payload, "content": {"type": "text", "text": "b"}}, schema="b")
    assert json.loads(other)["message"]["content"]["text"] == "b"


def test_only_the_newest_frames_are_kept() -> None:
    first = _payload()
    frame = new_message_frame(first, schema="tenant_a")
    for _ in range(NEW_MESSAGE_FRAMES_KEPT):
        new_message_frame(_payload(), schema="tenant_a")
    rebuilt = new_message_frame(first, schema="tenant_a")
    assert rebuilt == frame
    assert rebuilt is not frame
