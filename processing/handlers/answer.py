"""`answer`: the agent's own reply (its LLM, or the offline responder without a key)."""

from __future__ import annotations

import logging

from agents.llm import LlmUnavailable
from processing.handlers.base import HandlerContext, HandlerResult, handler, text_reply
from processing.responders import NoAnswer, agent_reply

logger = logging.getLogger(__name__)

HANDOFF_TEXT = "I'm passing this to a person from our team, who will answer here shortly."


@handler("answer", calls_model=True)
def answer(ctx: HandlerContext) -> HandlerResult:
    if ctx.message.content.get("type") == "reaction":
        return HandlerResult()
    try:
        reply = agent_reply(agent=ctx.agent, conversation=ctx.conversation, question=ctx.text)
    except NoAnswer:
        return HandlerResult(
            replies=[text_reply(HANDOFF_TEXT)], handoff="no_answer", billable=False
        )
    except LlmUnavailable as unavailable:
        logger.warning("LLM unavailable; fallback reply", extra={"reason": unavailable.reason})
        return HandlerResult(
            replies=[text_reply(ctx.agent.fallback_reply or HANDOFF_TEXT)],
            handoff=f"llm_{unavailable.reason}",
            billable=False,
        )
    return HandlerResult(replies=[text_reply(reply.text)], tokens=reply.tokens)


@handler("handoff")
def handoff(ctx: HandlerContext) -> HandlerResult:
    return HandlerResult(replies=[text_reply(HANDOFF_TEXT)], handoff="requested", billable=False)
