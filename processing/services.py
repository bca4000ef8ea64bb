"""Processing inbound messages: one conversation at a time, strictly in seq order, across any
number of workers; every reply written in the same transaction that moves the cursor."""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents.models import Agent
from billing.selectors import credit_can_afford, credit_reply_price
from billing.services import InsufficientCredits, credit_debit
from channels_app.providers.base import content_as_text
from conversations.models import Conversation, Message
from conversations.services.messages import message_send
from processing.context import context_prepare, context_use
from processing.handlers import HANDLERS, HandlerContext
from processing.handlers.answer import HANDOFF_TEXT
from processing.handlers.base import text_reply
from processing.handoff import conversation_handoff
from processing.models import ConversationCursor, ReplyCharge
from processing.routing import HANDOFF_HANDLER, route_decide
from tenants.connection import tenant_connection

logger = logging.getLogger(__name__)

STRANDED_AFTER = timedelta(minutes=1)
DELIVERED_STATUSES = {Message.Status.SENT, Message.Status.DELIVERED, Message.Status.READ}


class ConversationBusy(Exception):
    """Another worker is processing this conversation right now."""


def _lock_key(conversation_id: uuid.UUID | str) -> int:
    digest = hashlib.sha256(
        f"{tenant_connection().schema_name}:{conversation_id}".encode()
    ).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _try_lock(conversation_id: uuid.UUID | str) -> bool:
    """A transaction-scoped advisory lock: released by commit or rollback, even if the worker
    dies, so no conversation stays locked."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_lock_key(conversation_id)])
        row = cursor.fetchone()
    return bool(row and row[0])


def conversation_drain(*, conversation_id: uuid.UUID | str) -> int:
    """Processes every inbound message of the conversation not yet processed, in seq order.

    Returns how many it processed. Raises ConversationBusy when another worker holds the
    conversation (the caller retries shortly: that worker may have finished its scan already).
    """
    processed = 0
    while True:
        with transaction.atomic():
            if not _try_lock(conversation_id):
                raise ConversationBusy()
            cursor, _ = ConversationCursor.objects.get_or_create(conversation_id=conversation_id)
            message = (
                Message.objects.select_related(
                    "conversation__channel__agent", "conversation__contact"
                )
                .filter(
                    conversation_id=conversation_id,
                    direction=Message.Direction.IN,
                    seq__gt=cursor.processed_seq,
                )
                .order_by("seq")
                .first()
            )
            if message is None:
                return processed
            if message.deleted_at is None:
                message_process(message=message)
            cursor.processed_seq = message.seq
            cursor.save(update_fields=["processed_seq", "updated_at"])
        processed += 1


def _reply_price(tokens: int) -> int:
    # The tenant's own prices where the platform set them (billing.selectors).
    return credit_reply_price(tokens=tokens)


def message_process(*, message: Message) -> None:
    """Answers one inbound message, if it is the AI's turn: routing picks a handler, the handler
    says what to reply; the replies are written and the first one's price fixed (charged once
    it is delivered). Credits are checked before any LLM call (routing may call one too)."""
    conversation = message.conversation
    agent = conversation.channel.agent
    if not conversation.ai_active or agent is None:
        return
    text = message.text or content_as_text(message.content)
    if not credit_can_afford(amount=_reply_price(0)):
        logger.warning(
            "no credits for an AI reply", extra={"conversation_id": str(conversation.pk)}
        )
        notice = [text_reply(agent.fallback_reply or HANDOFF_TEXT)]
        _send(conversation, message, _hand_off(conversation, agent, notice, reason="no_credits"))
        return
    # The recent messages and summaries the handler's LLM reply gets (processing/context.py).
    context = context_prepare(conversation=conversation, agent=agent, message=message)
    route = route_decide(
        message=message, conversation=conversation, agent=agent, text=text, context=context
    )
    handler_context = HandlerContext(
        message=message, conversation=conversation, agent=agent, text=text, route=route
    )
    with context_use(context):
        result = HANDLERS[route.handler](handler_context)
    contents = result.replies
    if result.handoff:
        # Routing knows why better than the generic `handoff` handler does.
        reason = route.reason if route.handler == HANDOFF_HANDLER else result.handoff
        contents = _hand_off(conversation, agent, contents, reason=reason)
    replies = _send(conversation, message, contents)
    if replies and result.billable:
        tokens = route.tokens + result.tokens
        ReplyCharge.objects.get_or_create(
            message=replies[0], defaults={"amount": _reply_price(tokens), "tokens": tokens}
        )


def _hand_off(
    conversation: Conversation, agent: Agent, contents: list[dict[str, Any]], *, reason: str
) -> list[dict[str, Any]]:
    """Hands the conversation to a person; returns the replies to send. Out of business hours
    a generic "a person will answer shortly" gives way to the notice saying when."""
    outcome = conversation_handoff(conversation=conversation, reason=reason)
    if not outcome.notice:
        return contents
    generic = {HANDOFF_TEXT, agent.fallback_reply}
    kept = [c for c in contents if not (c.get("type") == "text" and c.get("text") in generic)]
    return [*kept, text_reply(outcome.notice)]


def _send(
    conversation: Conversation, inbound: Message, contents: list[dict[str, Any]]
) -> list[Message]:
    """The AI's replies to one inbound message; client ids make a rerun write nothing twice."""
    sent = []
    for index, content in enumerate(contents):
        reply, _ = message_send(
            conversation=conversation,
            content=content,
            sender_type=Message.SenderType.AI,
            client_id=f"reply:{inbound.pk}" if index == 0 else f"reply:{inbound.pk}:{index}",
        )
        sent.append(reply)
    return sent


@transaction.atomic
def reply_charge_settle(*, message_id: uuid.UUID | str) -> ReplyCharge | None:
    """Charges a delivered AI reply, once (the ledger is idempotent by the reply's id)."""
    charge = (
        ReplyCharge.objects.select_for_update()
        .select_related("message")
        .filter(message_id=message_id)
        .first()
    )
    if charge is None or charge.charged_at or charge.unpaid:
        return charge
    if charge.message.status not in DELIVERED_STATUSES:
        return charge
    try:
        credit_debit(
            amount=charge.amount,
            reason="AI reply",
            idempotency_key=f"reply:{message_id}",
            message_id=message_id,
        )
    except InsufficientCredits:
        logger.warning(
            "a delivered reply could not be charged", extra={"message_id": str(message_id)}
        )
        charge.unpaid = True
        charge.save(update_fields=["unpaid"])
        return charge
    charge.charged_at = timezone.now()
    charge.save(update_fields=["charged_at"])
    return charge


def conversations_with_unprocessed_messages() -> list[uuid.UUID]:
    """Conversations whose inbound messages wait past the sweep threshold (a lost task)."""
    processed_seq = ConversationCursor.objects.filter(conversation=OuterRef("conversation")).values(
        "processed_seq"
    )[:1]
    waiting = (
        Message.objects.filter(
            direction=Message.Direction.IN,
            created_at__lt=timezone.now() - STRANDED_AFTER,
            conversation__ai_active=True,
        )
        .annotate(processed=Coalesce(Subquery(processed_seq), Value(0)))
        .filter(seq__gt=F("processed"))
    )
    return list(waiting.values_list("conversation_id", flat=True).distinct()[:1000])
