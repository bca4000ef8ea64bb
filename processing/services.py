"""Processing inbound messages: one conversation at a time, strictly in seq order, across any
number of workers; every reply written in the same transaction that moves the cursor."""

from __future__ import annotations

import hashlib
import logging
import math
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents.llm import LlmUnavailable
from billing.selectors import credit_can_afford
from billing.services import InsufficientCredits, credit_debit
from channels_app.providers.base import content_as_text
from conversations.models import Conversation, Message
from conversations.services.conversations import conversation_update
from conversations.services.messages import message_send
from processing.models import ConversationCursor, ReplyCharge
from processing.responders import NoAnswer, agent_reply
from tenants.connection import tenant_connection

logger = logging.getLogger(__name__)

HANDOFF_TEXT = "I'm passing this to a person from our team, who will answer here shortly."
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


def conversation_handoff(*, conversation: Conversation, reason: str) -> None:
    """A person takes over: the AI stops answering and the conversation waits for an operator."""
    logger.info("handoff", extra={"conversation_id": str(conversation.pk), "reason": reason})
    conversation_update(
        conversation=conversation, ai_active=False, status=Conversation.Status.PENDING
    )


def _reply_price(tokens: int) -> int:
    return settings.HUB_CREDITS_PER_REPLY + math.ceil(
        tokens / 1000 * settings.HUB_CREDITS_PER_1K_TOKENS
    )


def _send_ai(conversation: Conversation, inbound: Message, text: str) -> Message:
    reply, _ = message_send(
        conversation=conversation,
        content={"type": "text", "text": text},
        sender_type=Message.SenderType.AI,
        client_id=f"reply:{inbound.pk}",
    )
    return reply


def message_process(*, message: Message) -> None:
    """Answers one inbound message with the conversation's AI agent, if it is the AI's turn.

    Credits are checked before any LLM call; the reply's price is fixed here and charged once
    it is delivered. No credits or no answer: the conversation goes to a person."""
    conversation = message.conversation
    agent = conversation.channel.agent
    if not conversation.ai_active or agent is None or message.content.get("type") == "reaction":
        return
    question = message.text or content_as_text(message.content)
    if not credit_can_afford(amount=settings.HUB_CREDITS_PER_REPLY):
        logger.warning(
            "no credits for an AI reply", extra={"conversation_id": str(conversation.pk)}
        )
        _send_ai(conversation, message, agent.fallback_reply or HANDOFF_TEXT)
        conversation_handoff(conversation=conversation, reason="no_credits")
        return
    try:
        answer = agent_reply(agent=agent, conversation=conversation, question=question)
    except NoAnswer:
        _send_ai(conversation, message, HANDOFF_TEXT)
        conversation_handoff(conversation=conversation, reason="no_answer")
        return
    except LlmUnavailable as unavailable:
        logger.warning("LLM unavailable; fallback reply", extra={"reason": unavailable.reason})
        _send_ai(conversation, message, agent.fallback_reply or HANDOFF_TEXT)
        conversation_handoff(conversation=conversation, reason=f"llm_{unavailable.reason}")
        return
    reply = _send_ai(conversation, message, answer.text)
    ReplyCharge.objects.get_or_create(
        message=reply, defaults={"amount": _reply_price(answer.tokens), "tokens": answer.tokens}
    )


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
