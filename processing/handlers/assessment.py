"""`assessment`: a multi-step questionnaire the tenant defines as JSON (docs/handlers.md).

The first message starts a flow (one routing named in an `assessment` entity, one whose key is
the intent, one whose trigger phrase the message holds, or the only enabled one) and asks its
first question; while the run is in progress each message is the answer to the current question:
checked, stored, and answered with the next question, an explanation and the question again, or
the completion with its score and outcome. `stop` cancels. The run is the conversation's state
machine: `automation.selectors.conversation_sticky_handler` tells routing that the conversation
belongs here until it ends. No LLM is called, so nothing is billed.
"""

from __future__ import annotations

import logging

from automation.selectors import assessment_flow_choose, assessment_run_active
from automation.services import assessment_answer, assessment_start
from processing.handlers.base import HandlerContext, HandlerResult, handler, text_reply

logger = logging.getLogger(__name__)

NO_FLOW_TEXT = "Sorry, there is no questionnaire to start right now."


@handler("assessment")
def assessment(ctx: HandlerContext) -> HandlerResult:
    if ctx.message.content.get("type") == "reaction":
        return HandlerResult()
    run = assessment_run_active(conversation_id=ctx.conversation.pk)
    if run is not None:
        step = assessment_answer(run=run, message=ctx.message, text=ctx.text)
    else:
        flow = assessment_flow_choose(
            text=ctx.text, intent=ctx.route.intent, entities=ctx.route.entities
        )
        if flow is None:
            logger.warning(
                "assessment routed but no flow fits",
                extra={"conversation_id": str(ctx.conversation.pk)},
            )
            return HandlerResult(replies=[text_reply(NO_FLOW_TEXT)], billable=False)
        step = assessment_start(flow=flow, conversation=ctx.conversation, message=ctx.message)
    return HandlerResult(replies=step.replies, handoff=step.handoff, billable=False)
