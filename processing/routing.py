"""Which handler answers an inbound message."""

from __future__ import annotations

from agents.models import Agent
from conversations.models import Conversation, Message
from processing.handlers.base import Route


def route_decide(*, message: Message, conversation: Conversation, agent: Agent, text: str) -> Route:
    """The agent answers everything, until routing rules say otherwise."""
    return Route(handler="answer")
