"""`qna`: an answer from the tenant's knowledge documents, citing its source.

The passages come from `knowledge_passages_search` (embedding similarity in pgvector, or full
text). With an LLM the agent answers from those passages only; without one (or when it fails)
the best passage is quoted. Either way the reply ends with its sources, added here rather than
left to the model. Nothing found: a person takes over rather than a guess.
"""

from __future__ import annotations

import logging
import re

from agents.llm import LlmUnavailable, llm_configured, llm_reply
from knowledge.selectors import PassageMatch, knowledge_passages_search
from processing.context import context_active
from processing.handlers.base import HandlerContext, HandlerResult, handler, text_reply

logger = logging.getLogger(__name__)

PASSAGES = 3
EXCERPT_CHARS = 600
NOT_FOUND_TEXT = (
    "I couldn't find that in our documents, so I'm passing your question to a person from "
    "our team, who will answer here shortly."
)
INSTRUCTIONS = (
    "Answer the customer's last message using only the numbered sources below. If they do not "
    "answer it, say so briefly and that a person from the team will follow up; never invent "
    "facts. Be concise. Do not list the sources: they are appended to your reply."
)


def _excerpt(passage: str, question: str) -> str:
    """The sentences of the passage sharing most words with the question, in their order."""
    words = {w.lower() for w in re.findall(r"\w{3,}", question)}
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", passage) if s.strip()]
    ranked = sorted(
        range(len(sentences)),
        key=lambda i: (-len(words & {w.lower() for w in re.findall(r"\w{3,}", sentences[i])}), i),
    )
    chosen: list[int] = []
    length = 0
    for index in ranked:
        if chosen and length + len(sentences[index]) > EXCERPT_CHARS:
            break
        chosen.append(index)
        length += len(sentences[index])
    return " ".join(sentences[i] for i in sorted(chosen))[:EXCERPT_CHARS]


def _sources(matches: list[PassageMatch]) -> str:
    """One line per document cited, in the order first used: title and link."""
    seen: dict[str, str] = {}
    for match in matches:
        document = match.document
        label = (
            f"{document.title} ({document.source_url})" if document.source_url else document.title
        )
        seen.setdefault(str(document.pk), label)
    labels = list(seen.values())
    if len(labels) == 1:
        return f"Source: {labels[0]}"
    return "Sources: " + "; ".join(labels)


def _sources_block(matches: list[PassageMatch]) -> str:
    blocks = [
        f"[{number}] {match.document.title}\n{match.text}"
        for number, match in enumerate(matches, start=1)
    ]
    return INSTRUCTIONS + "\n\nSources:\n\n" + "\n\n".join(blocks)


@handler("qna", calls_model=True)
def qna(ctx: HandlerContext) -> HandlerResult:
    if ctx.message.content.get("type") == "reaction":
        return HandlerResult()
    matches = knowledge_passages_search(text=ctx.text, limit=PASSAGES)
    if not matches:
        return HandlerResult(
            replies=[text_reply(NOT_FOUND_TEXT)], handoff="no_answer", billable=False
        )
    if llm_configured():
        context = context_active()
        try:
            reply = llm_reply(
                agent=ctx.agent,
                conversation=ctx.conversation,
                input_text=ctx.text,
                # The conversation's context (history for chat completions, a recap after a
                # pause) as every reply gets it, then what this handler adds.
                history=context.history if context else None,
                instructions_extra="\n\n".join(
                    part
                    for part in (
                        context.instructions(api_mode=ctx.agent.api_mode) if context else "",
                        _sources_block(matches),
                    )
                    if part
                ),
            )
        except LlmUnavailable as unavailable:
            # The passages are in hand: quote the best one rather than send a fallback.
            logger.warning(
                "LLM unavailable; quoting the passage", extra={"reason": unavailable.reason}
            )
        else:
            text = f"{reply.text.strip()}\n\n{_sources(matches)}"
            return HandlerResult(replies=[text_reply(text)], tokens=reply.usage.total_tokens)
    best = matches[0]
    text = f"{_excerpt(best.text, ctx.text)}\n\n{_sources([best])}"
    return HandlerResult(replies=[text_reply(text)])
