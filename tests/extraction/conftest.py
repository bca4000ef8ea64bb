"""The fake OpenAI server (from the agents' tests), and conversations to extract from."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from conversations.models import Conversation, Message
from conversations.services.messages import message_receive, message_send
from tests.agents.conftest import _closed_circuits, openai_fake  # noqa: F401 - fixtures
from tests.factories import ConversationFactory

DEFAULT_FIELDS = ["name", "email", "phone", "company", "budget", "intent", "timeline", "notes"]


@pytest.fixture(autouse=True)
def _offline_by_default(settings: Any) -> None:
    """No API key unless a test asks for the fake server: the rule-based extractor answers."""
    settings.OPENAI_API_KEY = ""


def conversation_with(*texts: str, replies: tuple[str, ...] = ()) -> Conversation:
    """A conversation whose customer wrote `texts` (and the business answered `replies`)."""
    conversation = ConversationFactory.create()
    for text in texts:
        message_receive(
            conversation=conversation,
            contact=conversation.contact,
            content={"type": "text", "text": text},
        )
    for text in replies:
        message_send(
            conversation=conversation,
            content={"type": "text", "text": text},
            sender_type=Message.SenderType.OPERATOR,
        )
    conversation.refresh_from_db()
    return conversation


def go_quiet(conversation: Conversation, *, minutes: float, now: datetime | None = None) -> None:
    """The conversation's last activity `minutes` before `now`."""
    at = (now or timezone.now()) - timedelta(minutes=minutes)
    Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=at)
    conversation.refresh_from_db()


def lead_answer(**values: Any) -> dict[str, Any]:
    """A model's answer for the default lead schema: `name=("Ann", True)` sets a value and
    whether it is confirmed; every other field is null."""
    answer: dict[str, Any] = {name: {"value": None, "confirmed": False} for name in DEFAULT_FIELDS}
    for name, (value, confirmed) in values.items():
        answer[name] = {"value": value, "confirmed": confirmed}
    return answer
