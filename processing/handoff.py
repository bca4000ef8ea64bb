"""Handing a conversation to a person."""

from __future__ import annotations

import logging

from conversations.models import Conversation
from conversations.services.conversations import conversation_update

logger = logging.getLogger(__name__)


def conversation_handoff(*, conversation: Conversation, reason: str) -> None:
    """A person takes over: the AI stops answering and the conversation waits for an operator."""
    logger.info("handoff", extra={"conversation_id": str(conversation.pk), "reason": reason})
    conversation_update(
        conversation=conversation, ai_active=False, status=Conversation.Status.PENDING
    )
