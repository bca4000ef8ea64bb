"""The payloads of conversation events: the same shapes as the API's responses."""

from __future__ import annotations

from typing import Any

from conversations.models import Contact, Conversation, Message
from conversations.selectors import PREFETCHED_ATTACHMENTS


def message_payload(message: Message) -> dict[str, Any]:
    from conversations.api.serializers import MessageOutputSerializer

    content = message.content
    if not hasattr(message, PREFETCHED_ATTACHMENTS) and not (
        isinstance(content, dict) and content.get("attachment_id")
    ):
        # A message has attachments only when its content names one (conversations.services):
        # the others' payloads need no query for them (three payloads per answered message).
        setattr(message, PREFETCHED_ATTACHMENTS, [])
    return dict(MessageOutputSerializer(message).data)


def conversation_payload(conversation: Conversation) -> dict[str, Any]:
    from conversations.api.serializers import ConversationEventSerializer

    return dict(ConversationEventSerializer(conversation).data)


def contact_payload(contact: Contact) -> dict[str, Any]:
    from conversations.api.serializers import ContactOutputSerializer

    return dict(ContactOutputSerializer(contact).data)
