"""The one interface every handler implements: given the routed inbound message, what to say
back, what it cost, and whether a person should take over."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.models import Agent
from conversations.models import Conversation, Message


@dataclass(frozen=True)
class Route:
    """The routing decision for one inbound message (recorded for the admin and analytics)."""

    handler: str = "answer"
    rule_id: str | None = None
    intent: str = ""
    confidence: float | None = None
    entities: dict[str, Any] = field(default_factory=dict)
    tokens: int = 0


@dataclass(frozen=True)
class HandlerContext:
    message: Message
    conversation: Conversation
    agent: Agent
    # What the contact said, as text (choices and media captions included).
    text: str
    route: Route


@dataclass(frozen=True)
class HandlerResult:
    # Canonical contents to send, in order, as the AI's messages.
    replies: list[dict[str, Any]] = field(default_factory=list)
    # LLM tokens the handler spent, priced into the reply.
    tokens: int = 0
    # Set when a person should take over; the reason is recorded.
    handoff: str | None = None
    # An AI reply is billed; a fallback, a handoff notice or a stored rating is not.
    billable: bool = True


Handler = Callable[[HandlerContext], HandlerResult]

HANDLERS: dict[str, Handler] = {}
# The handlers that may call a model. They run outside any transaction, the model's seconds
# included, so what they write must be keyed by the message (a rerun after a failure writes
# nothing twice); the others run in the transaction that writes their replies.
MODEL_HANDLERS: set[str] = set()


def handler(name: str, *, calls_model: bool = False) -> Callable[[Handler], Handler]:
    """Registers a handler under the name routing rules use."""

    def register(function: Handler) -> Handler:
        HANDLERS[name] = function
        if calls_model:
            MODEL_HANDLERS.add(name)
        return function

    return register


def text_reply(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}
