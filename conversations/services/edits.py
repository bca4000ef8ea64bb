"""A contact's edit of a message they sent."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from conversations.content import content_validate
from conversations.events import message_payload
from conversations.models import Message
from hub.events import event_publish


@transaction.atomic
def message_edit(*, message: Message, content: Any) -> Message:
    """Replaces an inbound message's content with its edited version (seq and time stay)."""
    normalised, text = content_validate(content)
    message.content = normalised
    message.text = text
    message.save(update_fields=["content", "text", "updated_at"])
    event_publish(name="message.updated", payload=message_payload(message))
    return message
