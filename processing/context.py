"""What the model is given besides the message itself: the recent messages, a rolling summary of
the older ones, and a recap of what came before the conversation last started fresh.

A conversation runs in sessions. A session ends when the conversation is idle for longer than the
agent's `context_idle_reset_minutes`, or when an operator hands it back to the AI: the next
message starts a fresh session (a new OpenAI conversation) and what came before is condensed into
one recap (one LLM call), which the model gets as instructions from then on.

Within a session, the messages older than the agent's `context_window_messages` are folded into
a summary, refreshed every `context_summary_every` turns with one structured LLM call. The
chat-completions mode sends the recent messages as history and the summary as instructions; the
Responses API keeps the history in its OpenAI conversation, so only the recap is sent there.
Summary and recap are LLM-made: with no API key there are none, just the recent messages.

The summary, the recap and the session's bounds are cached in Redis with a TTL. They are derived
from the stored messages (idle gaps, hand-back notes), so a lost cache is rebuilt, not wrong.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import functools
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import redis
from django.db import connection
from django.db.models import F, QuerySet, Window
from django.db.models.functions import Lag

from agents.llm import CHAT_COMPLETIONS, LlmUnavailable, llm_configured, llm_structured
from agents.models import Agent, LlmCall
from channels_app.providers.base import content_as_text
from conversations.models import Conversation, Message
from hub.db import PreparedQuery
from hub.redis import get_redis
from tenants.connection import tenant_connection

logger = logging.getLogger(__name__)

CACHE_TTL_SECONDS = 2 * 24 * 3600
# The client id prefix of the private note `conversation_hand_back` writes: a session boundary.
HAND_BACK_CLIENT_ID = "handback:"
MESSAGE_CHARS = 1000
TRANSCRIPT_CHARS = 12_000
SUMMARY_CHARS = 2000
SUMMARY_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"summary": {"type": "string"}},
    "required": ["summary"],
}
SUMMARY_INSTRUCTIONS = (
    "Summarise this customer conversation for the assistant who continues it: who the customer "
    "is, what they asked, what was answered or promised, what is still open, with the names, "
    "numbers and dates that matter. At most 120 words, in the conversation's language."
)
ROLES: dict[str, str] = {
    Message.SenderType.CONTACT: "user",
    Message.SenderType.AI: "assistant",
    Message.SenderType.OPERATOR: "assistant",
}
SPEAKERS: dict[str, str] = {
    Message.SenderType.CONTACT: "Customer",
    Message.SenderType.AI: "Assistant",
    Message.SenderType.OPERATOR: "Team member",
}


@dataclass(frozen=True)
class ConversationContext:
    # The session's messages the summary does not cover, oldest first, before this message.
    history: list[dict[str, str]] = field(default_factory=list)
    summary: str = ""
    recap: str = ""
    # Tokens spent preparing it on this turn (summary or recap calls), priced into the reply.
    tokens: int = 0

    def instructions(self, *, api_mode: str) -> str:
        """What goes into the reply call's `instructions_extra`."""
        parts = []
        if self.recap:
            parts.append(
                "Earlier in this conversation (before a pause, or while a person from the team "
                f"answered): {self.recap}"
            )
        if api_mode == CHAT_COMPLETIONS and self.summary:
            parts.append(f"Summary of the older part of this conversation: {self.summary}")
        return "\n\n".join(parts)


@dataclass
class _State:
    """The cached part: where the session starts, and the LLM-made texts with what they cover."""

    since_seq: int
    summary: str = ""
    summary_upto_seq: int = 0
    refreshed_at_seq: int = 0
    recap: str = ""


# --- The context of the message being processed --------------------------------------------

_active: contextvars.ContextVar[ConversationContext | None] = contextvars.ContextVar(
    "hub_conversation_context", default=None
)


@contextlib.contextmanager
def context_use(context: ConversationContext) -> Iterator[None]:
    """Makes `context` the one handlers' replies get (processing/responders.py) while the
    current message is handled, as `translation.override` does for a language."""
    token = _active.set(context)
    try:
        yield
    finally:
        _active.reset(token)


def context_active() -> ConversationContext | None:
    return _active.get()


# --- The cache --------------------------------------------------------------------------------


def _key(conversation: Conversation) -> str:
    return f"hub:context:{tenant_connection().schema_name}:{conversation.pk}"


def _load(conversation: Conversation) -> tuple[_State | None, bool]:
    """The cached state (None on a miss) and whether the cache is reachable."""
    try:
        raw = get_redis().get(_key(conversation))
    except redis.RedisError:
        logger.warning("context cache unavailable", extra={"conversation_id": str(conversation.pk)})
        return None, False
    if not raw:
        return None, True
    try:
        return _State(**json.loads(raw)), True
    except (TypeError, ValueError):
        return None, True


def _store(conversation: Conversation, state: _State) -> None:
    with contextlib.suppress(redis.RedisError):
        get_redis().set(_key(conversation), json.dumps(asdict(state)), ex=CACHE_TTL_SECONDS)


def context_summary(*, conversation: Conversation) -> str:
    """The conversation's recap and summary as cached ("" when there are none), for people:
    an operator taking over reads it in the handoff notification."""
    state, _ = _load(conversation)
    if state is None:
        return ""
    return " ".join(part for part in (state.recap, state.summary) if part)


# --- Messages ---------------------------------------------------------------------------------


def _visible(conversation_id: uuid.UUID) -> QuerySet[Message]:
    """The messages a model may see: not private notes, not deleted, said by someone."""
    return Message.objects.filter(
        conversation_id=conversation_id,
        is_private=False,
        deleted_at__isnull=True,
        sender_type__in=list(ROLES),
    )


@functools.lru_cache(maxsize=64)
def _window_query(limit: int) -> PreparedQuery:
    # One per limit (agents' window settings: a handful), as a limit is written into the SQL.
    return PreparedQuery(
        lambda conversation_id, after, before: (
            _visible(conversation_id).filter(seq__gt=after, seq__lt=before).order_by("-seq")[:limit]
        ),
        conversation_id=uuid.UUID,
        after=int,
        before=int,
    )


def _window(conversation: Conversation, *, after: int, before: int, limit: int) -> list[Message]:
    """The newest `limit` visible messages with `after < seq < before`, oldest first: read for
    every message answered."""
    newest = _window_query(limit).all(conversation_id=conversation.pk, after=after, before=before)
    return list(reversed(newest))


def _text(message: Message) -> str:
    return (message.text or content_as_text(message.content)).strip()[:MESSAGE_CHARS]


def _history(messages: list[Message]) -> list[dict[str, str]]:
    return [
        {"role": ROLES[message.sender_type], "content": text}
        for message in messages
        if (text := _text(message))
    ]


def _transcript(messages: list[Message]) -> str:
    lines = [f"{SPEAKERS[m.sender_type]}: {text}" for m in messages if (text := _text(m))]
    transcript = "\n".join(lines)
    # The newest part matters most when it has to be cut.
    return transcript[-TRANSCRIPT_CHARS:]


# --- Sessions ---------------------------------------------------------------------------------


# What comes before a message, for its session: the previous message's time (an idle gap) and
# the latest hand-back note. One plain statement on every message (docs/performance.md).
_MESSAGES = Message._meta.db_table
_BEFORE_SQL = (
    f"SELECT (SELECT created_at FROM {_MESSAGES} WHERE conversation_id = %s"  # noqa: S608
    " AND seq < %s AND NOT is_private ORDER BY seq DESC LIMIT 1),"
    f" (SELECT seq FROM {_MESSAGES} WHERE conversation_id = %s AND seq < %s"
    " AND sender_type = %s AND is_private AND client_id LIKE %s ORDER BY seq DESC LIMIT 1)"
)


def _before(message: Message) -> tuple[datetime.datetime | None, int | None]:
    """The previous shared message's time and the latest hand-back note's seq before
    `message` (as `last_hand_back_seq`), in one round trip."""
    with connection.cursor() as cursor:
        cursor.execute(
            _BEFORE_SQL,
            [
                message.conversation_id,
                message.seq,
                message.conversation_id,
                message.seq,
                Message.SenderType.SYSTEM.value,
                f"{HAND_BACK_CLIENT_ID}%",
            ],
        )
        previous_at, hand_back = cursor.fetchone()
    return previous_at, hand_back


def _last_idle_start(message: Message, minutes: int) -> int:
    """The seq of the latest message, up to this one, that came after an idle gap (1: none)."""
    gap = datetime.timedelta(minutes=minutes)
    start = (
        Message.objects.filter(
            conversation_id=message.conversation_id, seq__lte=message.seq, is_private=False
        )
        .annotate(previous_at=Window(Lag("created_at"), order_by=F("seq").asc()))
        .filter(created_at__gt=F("previous_at") + gap)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )
    return start or 1


def last_hand_back_seq(message: Message) -> int | None:
    """The seq of the conversation's latest hand-back note before `message`."""
    return (
        Message.objects.filter(
            conversation_id=message.conversation_id,
            seq__lt=message.seq,
            sender_type=Message.SenderType.SYSTEM,
            is_private=True,
            client_id__startswith=HAND_BACK_CLIENT_ID,
        )
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
    )


def _session_start(message: Message, agent: Agent, state: _State | None) -> tuple[int, bool]:
    """Where this message's session starts, and whether it starts with this message after an
    idle gap."""
    minutes = agent.context_idle_reset_minutes
    start = state.since_seq if state else 1
    if minutes and state is None:
        start = _last_idle_start(message, minutes)
    previous_at, hand_back = _before(message)
    idle = (
        bool(minutes)
        and previous_at is not None
        and message.created_at - previous_at > datetime.timedelta(minutes=minutes)
    )
    if idle:
        start = message.seq
    if hand_back is not None and hand_back >= start:
        start = hand_back + 1
    return start, idle


def _summarize(
    *, agent: Agent, prior: list[str], messages: list[Message]
) -> tuple[str | None, int]:
    """One structured call; None when the LLM is unavailable (the caller keeps what it had)."""
    transcript = _transcript(messages)
    if not transcript:
        return None, 0
    instructions = SUMMARY_INSTRUCTIONS
    if known := " ".join(part for part in prior if part):
        instructions += f"\n\nWhat was summarised before this part (fold it in): {known}"
    try:
        data, usage = llm_structured(
            agent=agent,
            purpose=LlmCall.Purpose.SUMMARY,
            schema_name="summary",
            schema=SUMMARY_SCHEMA,
            input_text=transcript,
            instructions=instructions,
        )
    except LlmUnavailable as error:
        logger.warning("summary unavailable", extra={"reason": error.reason})
        return None, 0
    return str(data.get("summary") or "").strip()[:SUMMARY_CHARS], usage.total_tokens


def context_prepare(
    *, conversation: Conversation, agent: Agent, message: Message
) -> ConversationContext:
    """The context for answering `message` (an inbound message being processed).

    Starts a fresh session when the conversation was idle past the agent's setting: the OpenAI
    conversation id is cleared (a new one is created on the next reply) and, with an LLM, what
    came before is condensed into the recap. Refreshes the rolling summary every N turns once
    the session outgrows the window. Safe to call again for the same message (a retried drain):
    the cached state already reflects it, so no LLM call is repeated.
    """
    if message.seq == 1:
        # The conversation's first message: nothing before it to read or summarise.
        _store(conversation, _State(since_seq=1))
        return ConversationContext()
    state, cache_ok = _load(conversation)
    start, idle = _session_start(message, agent, state)
    if idle and conversation.llm_conversation_id:
        Conversation.objects.filter(pk=conversation.pk).update(llm_conversation_id="")
        conversation.llm_conversation_id = ""
    # Summaries are only made where they can be kept: without the cache, each turn would redo them.
    summarising = llm_configured() and cache_ok
    window = agent.context_window_messages
    tokens = 0
    if state is None or state.since_seq != start:
        recap = ""
        earlier = _window(
            conversation,
            after=max(state.summary_upto_seq, 0) if state else 0,
            before=start,
            limit=2 * window,
        )
        if summarising and earlier:
            prior = [state.recap, state.summary] if state else []
            made, tokens = _summarize(agent=agent, prior=prior, messages=earlier)
            recap = made or ""
        state = _State(
            since_seq=start, recap=recap, summary_upto_seq=start - 1, refreshed_at_seq=start - 1
        )
    uncovered = _window(
        conversation,
        after=max(state.summary_upto_seq, start - 1),
        before=message.seq,
        limit=4 * window,
    )
    turns = 1 + sum(
        1
        for m in uncovered
        if m.sender_type == Message.SenderType.CONTACT and m.seq > state.refreshed_at_seq
    )
    every = agent.context_summary_every
    if summarising and every and len(uncovered) > window and turns >= every:
        older, uncovered = uncovered[:-window], uncovered[-window:]
        made, spent = _summarize(agent=agent, prior=[state.summary], messages=older)
        tokens += spent
        # A failed refresh is retried N turns later, not on every message.
        state.refreshed_at_seq = message.seq
        if made is not None:
            state.summary, state.summary_upto_seq = made, older[-1].seq
    if cache_ok:
        _store(conversation, state)
    return ConversationContext(
        history=_history(uncovered[-2 * window :]),
        summary=state.summary,
        recap=state.recap,
        tokens=tokens,
    )
