"""Processing inbound messages: one conversation at a time, strictly in seq order, across any
number of workers; every reply written in the same transaction that moves the cursor.

The worker that stores an inbound message answers it in the same task when it can (see
`conversation_drains_inline`): it drains the conversation, sends each reply as soon as its
transaction commits, and charges it in the transaction that records it sent. A conversation
another worker holds, a reply the provider defers and anything unexpected go the queued way:
the drain task, the delivery task with its backoff, the sweepers."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from agents.models import Agent
from billing.selectors import credit_can_afford, credit_reply_price
from billing.services import InsufficientCredits, credit_debit
from channels_app.delivery import message_deliver_enqueue, message_deliver_or_retry
from channels_app.providers.base import content_as_text
from conversations.models import Conversation, Message
from conversations.services.messages import message_send
from hub.db import insert_unless_conflict
from processing.context import ConversationContext, context_prepare, context_use
from processing.handlers import HANDLERS, MODEL_HANDLERS, HandlerContext, HandlerResult
from processing.handlers.answer import HANDOFF_TEXT
from processing.handlers.base import text_reply
from processing.handoff import conversation_handoff
from processing.models import ReplyCharge
from processing.routing import HANDOFF_HANDLER, route_decide
from processing.selectors import messages_stranded_unprocessed
from tenants.connection import tenant_connection

logger = logging.getLogger(__name__)

DELIVERED_STATUSES = {Message.Status.SENT, Message.Status.DELIVERED, Message.Status.READ}


class ConversationBusy(Exception):
    """Another worker is processing this conversation right now."""


# The drain's bookkeeping is a few plain statements on its own table (and the messages' seqs),
# written as SQL: through the ORM, compiling them cost more than the rest of the drain's reads
# (docs/performance.md).
_NEXT = (
    "SELECT id FROM conversations_message WHERE conversation_id = %s AND direction = %s"
    " AND seq > {after} ORDER BY seq LIMIT 1"
)
# Takes the conversation (creating its cursor on its first message) unless another worker holds
# it and its lease has not run out; returns a row, the first inbound message past the cursor (or
# NULL), only when taken. A worker taking it while the holder gives it up waits for the holder's
# commit and sees the lease as it was left.
_HOLD_SQL = (  # noqa: S608 - built of constants only
    "WITH held AS (INSERT INTO processing_conversationcursor"
    " (conversation_id, processed_seq, updated_at, held_by, held_until)"
    " VALUES (%s, 0, now(), %s, now() + make_interval(secs => %s)) ON CONFLICT (conversation_id)"
    " DO UPDATE SET held_by = EXCLUDED.held_by, held_until = EXCLUDED.held_until"
    " WHERE processing_conversationcursor.held_until IS NULL"
    " OR processing_conversationcursor.held_until < now()"
    " RETURNING processed_seq)"
    " SELECT ({next}) FROM held"
).format(next=_NEXT.format(after="held.processed_seq"))
# Moves the cursor past `seq` in the answer's transaction, if the lease is still this worker's
# (no row otherwise); returns the next inbound message, renewing the lease for it, or NULL,
# giving the lease up with the move: a message committed after this look finds the
# conversation free once this commits.
_MOVE_SQL = (  # noqa: S608 - built of constants only
    "WITH next AS ({next})"
    " UPDATE processing_conversationcursor SET processed_seq = %s, updated_at = now(),"
    " held_by = CASE WHEN EXISTS (SELECT FROM next) THEN held_by END,"
    " held_until = CASE WHEN EXISTS (SELECT FROM next) THEN now() + make_interval(secs => %s) END"
    " WHERE conversation_id = %s AND held_by = %s RETURNING (SELECT id FROM next)"
).format(next=_NEXT.format(after="%s"))
_RELEASE_SQL = (
    "UPDATE processing_conversationcursor SET held_by = NULL, held_until = NULL"
    " WHERE conversation_id = %s AND held_by = %s"
)
# Taken before the replies are written, as writing them would take it: an operator who took
# the conversation over while the model was answering has it from then on.
_AI_ACTIVE_SQL = "SELECT ai_active FROM conversations_conversation WHERE id = %s FOR UPDATE"


class LeaseLost(Exception):
    """The worker's lease on the conversation ran out and another worker took it."""


@dataclass(frozen=True)
class _Lease:
    conversation_id: uuid.UUID | str
    holder: uuid.UUID = field(default_factory=uuid.uuid4)
    seconds: int = field(default_factory=lambda: settings.HUB_CONVERSATION_LEASE_SECONDS)

    def take(self) -> tuple[bool, uuid.UUID | None]:
        """Whether it was taken, and the first message waiting past the cursor."""
        with connection.cursor() as cursor:
            cursor.execute(
                _HOLD_SQL,
                [
                    self.conversation_id,
                    self.holder,
                    self.seconds,
                    self.conversation_id,
                    Message.Direction.IN.value,
                ],
            )
            row = cursor.fetchone()
        return (row is not None, row[0] if row else None)

    def cursor_move(self, seq: int) -> uuid.UUID | None:
        """Moves the cursor to `seq`; returns the inbound message waiting past it, still held,
        or None, given up. Raises LeaseLost (and the caller's transaction rolls back)."""
        with connection.cursor() as cursor:
            cursor.execute(
                _MOVE_SQL,
                [
                    self.conversation_id,
                    Message.Direction.IN.value,
                    seq,
                    seq,
                    self.seconds,
                    self.conversation_id,
                    self.holder,
                ],
            )
            row = cursor.fetchone()
        if row is None:
            raise LeaseLost()
        return cast("uuid.UUID | None", row[0])

    def give_up(self) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute(_RELEASE_SQL, [self.conversation_id, self.holder])
        except DatabaseError:
            if connection.in_atomic_block:
                raise
            logger.warning(
                "conversation not given up; its lease runs out by itself",
                extra={"conversation_id": str(self.conversation_id)},
            )


def _unprocessed(message_id: uuid.UUID, known: dict[str, Message]) -> Message | None:
    """The message, with what answering it needs (its conversation, channel, agent, contact):
    as the worker that stored it has it, else read."""
    return known.get(str(message_id)) or (
        Message.objects.select_related("conversation__channel__agent", "conversation__contact")
        .filter(pk=message_id)
        .first()
    )


def conversation_drain(
    *, conversation_id: uuid.UUID | str, known: dict[str, Message] | None = None
) -> int:
    """Processes every inbound message of the conversation not yet processed, in seq order.

    Returns how many it processed. Raises ConversationBusy when another worker holds the
    conversation (the caller retries shortly: that worker may have finished its scan already).
    The conversation is held by a lease on its cursor row, taken and given up in statements of
    their own: no transaction stays open, and no connection need stay with the worker, while
    the model answers. Each answer is written in a transaction of its own, which moves the
    cursor, looks for the next message and gives the lease up when there is none. `known`:
    messages by id as the caller stored them, loaded.
    """
    lease = _Lease(conversation_id)
    held, next_id = lease.take()
    if not held:
        raise ConversationBusy()
    processed = 0
    try:
        while next_id is not None:
            message = _unprocessed(next_id, known or {})
            if message is None:
                break
            answer = message_answer(message=message) if message.deleted_at is None else None
            with transaction.atomic():
                if answer is not None:
                    answer_record(message=message, answer=answer)
                next_id = lease.cursor_move(message.seq)
            held = next_id is not None
            processed += 1
    except LeaseLost:
        held = False
        logger.warning(
            "conversation lease ran out while answering; its next holder answers",
            extra={"conversation_id": str(conversation_id)},
        )
    finally:
        if held:
            lease.give_up()
    return processed


# The conversations whose new inbound messages this worker answers itself (see below); None
# outside `conversation_drains_inline`, where each gets a drain task.
_inline_drains: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "hub_inline_drains", default=None
)


def conversation_drain_requested(*, schema: str, conversation_id: uuid.UUID | str) -> None:
    """A new inbound message waits in the conversation (called once it is committed): noted
    for the worker that stored it, inside `conversation_drains_inline` in the same schema;
    else a drain task."""
    same = schema == tenant_connection().schema_name
    pending = _inline_drains.get()
    if pending is not None and same:
        if str(conversation_id) not in pending:
            pending.append(str(conversation_id))
        return
    with contextlib.nullcontext() if same else schema_context(schema):
        _drain_enqueue(str(conversation_id))


def _drain_enqueue(conversation_id: str) -> None:
    from processing.tasks import conversation_drain_task

    try:
        conversation_drain_task.delay(conversation_id)
    except (RedisError, BrokerError, OSError) as error:
        # The sweeper finds unprocessed conversations later.
        logger.warning(
            "broker unavailable; processing left for the sweeper",
            extra={"conversation_id": conversation_id, "error": type(error).__name__},
        )


@contextlib.contextmanager
def conversation_drains_inline(*, stored: list[Message] | None = None) -> Iterator[None]:
    """Answers, at the end of the block and in this worker, the conversations whose inbound
    messages the block stored: no drain task, no broker round trip, no second tenant switch.
    A conversation another worker holds, or whose drain fails, gets the drain task instead
    (which retries while it is held); if the block itself fails, every one does. `stored`:
    a list the block fills with the messages it stored, their conversation, channel, agent
    and contact loaded, which the drains then need not read again."""
    pending: list[str] = []
    token = _inline_drains.set(pending)
    try:
        yield
    except BaseException:
        _inline_drains.reset(token)
        for conversation_id in pending:
            _drain_enqueue(conversation_id)
        raise
    _inline_drains.reset(token)
    known = {str(message.pk): message for message in stored or []}
    for conversation_id in pending:
        try:
            conversation_drain(conversation_id=conversation_id, known=known)
        except ConversationBusy:
            _drain_enqueue(conversation_id)
        except Exception:
            logger.exception(
                "inline drain failed; handed to the drain task",
                extra={"conversation_id": conversation_id},
            )
            _drain_enqueue(conversation_id)


def _reply_price(tokens: int) -> int:
    # The tenant's own prices where the platform set them (billing.selectors).
    return credit_reply_price(tokens=tokens)


@dataclass(frozen=True)
class Answer:
    """An answer to one inbound message, worked out before it is written: the handler's result,
    or, from a handler that calls no model, the call itself, made where the answer is written
    (in one transaction with it)."""

    result: HandlerResult | None = None
    later: Callable[[], HandlerResult] | None = None
    route_tokens: int = 0
    # Routing knows why better than the generic `handoff` handler does.
    handoff_reason: str | None = None

    def handler_result(self) -> HandlerResult:
        if self.result is not None:
            return self.result
        assert self.later is not None
        return self.later()


def _handler_run(
    name: str, handler_context: HandlerContext, context: ConversationContext
) -> HandlerResult:
    with context_use(context):
        return HANDLERS[name](handler_context)


def message_answer(*, message: Message) -> Answer | None:
    """Works out the AI's answer to one inbound message; None when it is not the AI's turn.
    Credits are checked before any LLM call (routing may call one too), then routing picks a
    handler. Runs outside any transaction, as the model may take seconds: context and routing
    (whose writes are keyed by the message) and a handler that calls a model run here; any
    other handler runs where the answer is written."""
    conversation = message.conversation
    agent = conversation.channel.agent
    if not conversation.ai_active or agent is None:
        return None
    text = message.text or content_as_text(message.content)
    if not credit_can_afford(amount=_reply_price(0)):
        logger.warning(
            "no credits for an AI reply", extra={"conversation_id": str(conversation.pk)}
        )
        notice = [text_reply(agent.fallback_reply or HANDOFF_TEXT)]
        return Answer(result=HandlerResult(replies=notice, handoff="no_credits", billable=False))
    # The recent messages and summaries the handler's LLM reply gets (processing/context.py).
    context = context_prepare(conversation=conversation, agent=agent, message=message)
    route = route_decide(
        message=message, conversation=conversation, agent=agent, text=text, context=context
    )
    handler_context = HandlerContext(
        message=message, conversation=conversation, agent=agent, text=text, route=route
    )
    run = partial(_handler_run, route.handler, handler_context, context)
    return Answer(
        result=run() if route.handler in MODEL_HANDLERS else None,
        later=run,
        route_tokens=route.tokens,
        handoff_reason=route.reason if route.handler == HANDOFF_HANDLER else None,
    )


def answer_record(*, message: Message, answer: Answer) -> None:
    """Writes the AI's answer to `message` (in the drain's transaction): its replies, the
    handoff it asks for, and the first reply's price (charged once it is delivered). Nothing is
    written if a person took the conversation over while the model was answering."""
    conversation = message.conversation
    with connection.cursor() as cursor:
        cursor.execute(_AI_ACTIVE_SQL, [conversation.pk])
        row = cursor.fetchone()
    if not (row and row[0]):
        logger.info(
            "answer dropped: a person took the conversation over",
            extra={"conversation_id": str(conversation.pk)},
        )
        return
    result = answer.handler_result()
    contents = result.replies
    agent = conversation.channel.agent
    if result.handoff and agent is not None:
        reason = answer.handoff_reason or result.handoff
        contents = _hand_off(conversation, agent, contents, reason=reason)
    replies = _send(conversation, message, contents)
    if replies and result.billable:
        tokens = answer.route_tokens + result.tokens
        # A rerun finds the charge of a reply it wrote before: nothing is inserted twice.
        insert_unless_conflict(
            ReplyCharge(message=replies[0], amount=_reply_price(tokens), tokens=tokens)
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
    """The AI's replies to one inbound message; client ids make a rerun write nothing twice.
    Each is sent by this worker as soon as the transaction commits (`reply_deliver`)."""
    sent = []
    for index, content in enumerate(contents):
        reply, created = message_send(
            conversation=conversation,
            content=content,
            sender_type=Message.SenderType.AI,
            client_id=f"reply:{inbound.pk}" if index == 0 else f"reply:{inbound.pk}:{index}",
            enqueue_delivery=False,
        )
        if created:
            # The channel as loaded with the inbound message: delivery needs no read of it.
            reply.channel = conversation.channel
            transaction.on_commit(partial(reply_deliver, reply=reply))
        sent.append(reply)
    return sent


def reply_deliver(*, reply: Message) -> None:
    """Sends a reply the drain just committed, from the same worker: the provider's rate and
    transient failures defer it to the delivery task with its backoff (channels_app/delivery.py),
    and anything unexpected hands it to that task, so it is sent at least once either way."""
    try:
        message_deliver_or_retry(message_id=reply.pk, message=reply)
    except Exception:
        logger.exception(
            "inline delivery failed; handed to the delivery task",
            extra={"message_id": str(reply.pk)},
        )
        message_deliver_enqueue(message_id=reply.pk)


@transaction.atomic
def reply_charge_settle(*, message_id: uuid.UUID | str) -> ReplyCharge | None:
    """Charges a delivered AI reply, once (the ledger is idempotent by the reply's id)."""
    charge = ReplyCharge.objects.select_related("message").filter(message_id=message_id).first()
    if charge is None or charge.message.status not in DELIVERED_STATUSES:
        return charge
    if _charge(message_id=charge.message_id):
        charge.refresh_from_db(fields=["charged_at", "unpaid"])
    return charge


def reply_charge_on_sent(message: Message) -> None:
    """The delivery hook (channels_app.delivery.delivery_sent_subscribe): an AI reply that
    reached its provider is charged in the transaction that records it, so a reply is never
    recorded sent without its debit, nor debited twice. A reply without a charge (a fallback,
    a handoff notice) is free. Replies left uncharged some other way are found by the sweep."""
    if message.sender_type == Message.SenderType.AI:
        _charge(message_id=message.pk)


# Takes a delivered reply's charge in one statement: the row locked and marked charged, unless
# it was charged or found unpayable before (a lock and an update, two round trips, before).
_CHARGE_TAKE_SQL = (
    "UPDATE processing_replycharge SET charged_at = %s"
    " WHERE message_id = %s AND charged_at IS NULL AND NOT unpaid RETURNING amount"
)


def _charge(*, message_id: uuid.UUID) -> bool:
    """Debits the charge of a delivered reply in the caller's transaction, unless done (or found
    unpayable) before. Returns whether there was one to take."""
    with connection.cursor() as cursor:
        cursor.execute(_CHARGE_TAKE_SQL, [timezone.now(), message_id])
        row = cursor.fetchone()
    if row is None:
        return False
    try:
        credit_debit(
            amount=row[0],
            reason="AI reply",
            idempotency_key=f"reply:{message_id}",
            message_id=message_id,
        )
    except InsufficientCredits:
        logger.warning(
            "a delivered reply could not be charged", extra={"message_id": str(message_id)}
        )
        ReplyCharge.objects.filter(message_id=message_id).update(charged_at=None, unpaid=True)
    return True


def conversations_with_unprocessed_messages() -> list[uuid.UUID]:
    """Conversations whose inbound messages wait past the sweep threshold (a lost task)."""
    waiting = messages_stranded_unprocessed()
    return list(waiting.values_list("conversation_id", flat=True).distinct()[:1000])
