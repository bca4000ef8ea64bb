"""Where an AI reply's text comes from: the agent's LLM, or, with no API key, the tenant's
knowledge documents (so `make run` answers with no key at all)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agents.llm import llm_configured, llm_reply
from agents.models import Agent
from conversations.models import Conversation
from knowledge.selectors import knowledge_search
from processing.context import context_active

EXCERPT_CHARS = 400


@dataclass(frozen=True)
class Reply:
    text: str
    tokens: int = 0


class NoAnswer(Exception):
    """The responder has nothing honest to say: a person should answer."""


def _excerpt(body: str, question: str) -> str:
    """The sentences of `body` that share most words with the question, up to a short reply."""
    words = {w.lower() for w in re.findall(r"\w{3,}", question)}
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", body) if s.strip()]
    ranked = sorted(
        enumerate(sentences),
        key=lambda pair: (
            -len(words & {w.lower() for w in re.findall(r"\w{3,}", pair[1])}),
            pair[0],
        ),
    )
    chosen: list[tuple[int, str]] = []
    length = 0
    for index, sentence in ranked:
        if length + len(sentence) > EXCERPT_CHARS and chosen:
            break
        chosen.append((index, sentence))
        length += len(sentence)
    return " ".join(sentence for _, sentence in sorted(chosen))[:EXCERPT_CHARS]


def offline_reply(*, question: str) -> Reply:
    """The best-matching knowledge document, quoted briefly with its source; NoAnswer when no
    document matches, rather than a guess."""
    matches = knowledge_search(text=question, limit=1)
    if not matches:
        raise NoAnswer()
    document = matches[0].document
    source = f"{document.title} ({document.source_url})" if document.source_url else document.title
    return Reply(text=f"{_excerpt(document.body, question)}\n\nSource: {source}")


def agent_reply(*, agent: Agent, conversation: Conversation, question: str) -> Reply:
    """The agent's answer. Raises LlmUnavailable when the LLM fails (circuit open, retries
    spent): the caller sends the agent's fallback reply instead, free of charge."""
    if not llm_configured():
        return offline_reply(question=question)
    # The context of the message being processed, when there is one (processing/context.py).
    context = context_active()
    answer = llm_reply(
        agent=agent,
        conversation=conversation,
        input_text=question,
        history=context.history if context else None,
        instructions_extra=context.instructions(api_mode=agent.api_mode) if context else "",
    )
    return Reply(text=answer.text, tokens=answer.usage.total_tokens)
