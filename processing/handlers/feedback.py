"""`feedback`: a customer satisfaction rating, stored as CSAT with its sentiment.

A typed score ("4", "4/5", "5 stars"), stars or a single emoji is rated 1-5 and thanked; a poor
rating (1-2) is answered with an apology and handed to a person. A reaction on one of the AI's
messages rates that message silently (a changed reaction replaces the rating, a removed one
withdraws it); a reaction on anything else, or an emoji that says nothing of satisfaction, is
ignored. Nothing here calls the LLM, so nothing is billed.
"""

from __future__ import annotations

import uuid

from automation.parsing import rating_parse
from automation.services import csat_record, csat_withdraw
from conversations.models import Conversation, Message
from processing.handlers.base import HandlerContext, HandlerResult, handler, text_reply

ASK_TEXT = "How would you rate our help, from 1 (poor) to 5 (excellent)?"
THANKS_TEXT = "Thank you for your rating!"
SORRY_TEXT = (
    "Thank you for telling us, and I'm sorry we fell short. A person from our team will "
    "follow up here."
)


def _reacted_to(conversation: Conversation, reference: str) -> Message | None:
    """The message a reaction points at: the hub's id (web chat, API) or the provider's."""
    messages = Message.objects.filter(conversation=conversation)
    try:
        found = messages.filter(pk=uuid.UUID(reference)).first()
    except ValueError:
        found = None
    return found or messages.filter(provider_message_id=reference).first()


def _reaction(ctx: HandlerContext) -> HandlerResult:
    content = ctx.message.content
    rated = _reacted_to(ctx.conversation, str(content.get("message_id", "")))
    if rated is None or rated.sender_type != Message.SenderType.AI:
        return HandlerResult()
    emoji = str(content.get("emoji") or "")
    if not emoji:
        csat_withdraw(rated_message=rated)
        return HandlerResult()
    rating = rating_parse(emoji)
    if rating is not None:
        csat_record(message=ctx.message, score=rating.score, raw=emoji, rated_message=rated)
    return HandlerResult()


@handler("feedback")
def feedback(ctx: HandlerContext) -> HandlerResult:
    if ctx.message.content.get("type") == "reaction":
        return _reaction(ctx)
    rating = rating_parse(ctx.text)
    if rating is None:
        return HandlerResult(replies=[text_reply(ASK_TEXT)], billable=False)
    csat_record(message=ctx.message, score=rating.score, raw=rating.raw)
    if rating.score <= 2:
        return HandlerResult(
            replies=[text_reply(SORRY_TEXT)], handoff="negative_feedback", billable=False
        )
    return HandlerResult(replies=[text_reply(THANKS_TEXT)], billable=False)
