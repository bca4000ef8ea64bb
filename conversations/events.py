"""The payloads of conversation events: the same shapes as the API's responses."""

from __future__ import annotations

from typing import Any

from conversations.models import Contact, Conversation, Message
from conversations.selectors import PREFETCHED_ATTACHMENTS, messages_attachments_load


def message_payload(message: Message) -> dict[str, Any]:
    from conversations.api.serializers import MessageOutputSerializer

    if not hasattr(message, PREFETCHED_ATTACHMENTS):
        # Three payloads per answered message: a message without files costs no query.
        messages_attachments_load([message])
    return dict(MessageOutputSerializer(message).data)


def conversation_payload(conversation: Conversation) -> dict[str, Any]:
    from conversations.api.serializers import ConversationEventSerializer

    return dict(ConversationEventSerializer(conversation).data)


def contact_payload(contact: Contact) -> dict[str, Any]:
    from conversations.api.serializers import ContactOutputSerializer

    return dict(ContactOutputSerializer(contact).data)
