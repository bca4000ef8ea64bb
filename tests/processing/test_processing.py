"""Processing inbound messages: order, the offline responder, handoff and credits."""

from __future__ import annotations

import threading

from django.db import connections
from django_tenants.utils import schema_context

from billing.models import CreditBalance, CreditLedgerEntry
from billing.selectors import credit_balance_get
from billing.services import InsufficientCredits, credit_add, credit_debit
from channels_app.delivery import message_deliver
from channels_app.models import Channel, ChannelKind
from conversations.models import Contact, Conversation, Message, Participant
from conversations.services.messages import message_receive
from knowledge.models import KnowledgeDocument
from processing.handlers.answer import HANDOFF_TEXT
from processing.models import ConversationCursor, ReplyCharge
from processing.services import conversation_drain, reply_charge_settle
from tests import support
from tests.factories import AgentFactory

HOURS = KnowledgeDocument(
    title="Opening hours",
    body="Our shop is open from 9am to 6pm, Monday to Saturday. On Sundays we are closed. "
    "Deliveries leave every weekday at noon.",
    source_url="https://shop.example/hours",
)


def _conversation(*, ai: bool = True) -> Conversation:
    agent = AgentFactory.create()
    channel = Channel.objects.create(kind=ChannelKind.WEBCHAT, name="Chat", agent=agent, config={})
    contact = Contact.objects.create(name="Visitor")
    return Conversation.objects.create(channel=channel, contact=contact, ai_active=ai)


def _ask(conversation: Conversation, text: str) -> Message:
    message, _ = message_receive(
        conversation=conversation,
        contact=conversation.contact,
        content={"type": "text", "text": text},
    )
    return message


def _ai_replies(conversation: Conversation) -> list[Message]:
    return list(Message.objects.filter(conversation=conversation, sender_type="ai").order_by("seq"))


def _hours_answered() -> Message:
    """The AI's one reply to a question its knowledge answers (opening hours)."""
    KnowledgeDocument.objects.create(title=HOURS.title, body=HOURS.body)
    conversation = _conversation()
    _ask(conversation, "When are you open?")
    conversation_drain(conversation_id=conversation.pk)
    (reply,) = _ai_replies(conversation)
    return reply


def test_the_offline_responder_answers_from_a_document_with_its_source(tenant_a) -> None:
    with tenant_a.schema():
        KnowledgeDocument.objects.create(
            title=HOURS.title, body=HOURS.body, source_url=HOURS.source_url
        )
        conversation = _conversation()
        _ask(conversation, "When are you open on Saturday?")
        assert conversation_drain(conversation_id=conversation.pk) == 1
        (reply,) = _ai_replies(conversation)
        assert "9am to 6pm" in reply.content["text"]
        assert "Source: Opening hours (https://shop.example/hours)" in reply.content["text"]
        assert reply.client_id.startswith("reply:")
        assert ConversationCursor.objects.get(conversation=conversation).processed_seq == 1


def test_no_matching_document_hands_off_to_a_person(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        _ask(conversation, "Do you sell unicorns?")
        conversation_drain(conversation_id=conversation.pk)
        (reply,) = _ai_replies(conversation)
        assert reply.content["text"] == HANDOFF_TEXT
        conversation.refresh_from_db()
        assert (conversation.ai_active, conversation.status) == (False, "pending")
        assert not ReplyCharge.objects.filter(message=reply).exists()


def test_once_a_human_has_taken_over_the_ai_stays_quiet(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation(ai=False)
        _ask(conversation, "When are you open?")
        assert conversation_drain(conversation_id=conversation.pk) == 1
        assert _ai_replies(conversation) == []


def test_draining_twice_answers_once(tenant_a) -> None:
    with tenant_a.schema():
        KnowledgeDocument.objects.create(title=HOURS.title, body=HOURS.body)
        conversation = _conversation()
        _ask(conversation, "open hours?")
        _ask(conversation, "and deliveries?")
        assert conversation_drain(conversation_id=conversation.pk) == 2
        assert conversation_drain(conversation_id=conversation.pk) == 0
        replies = _ai_replies(conversation)
        assert len(replies) == 2
        # Each reply follows its question: question 1, reply, question 2, reply.
        assert [
            m.sender_type for m in Message.objects.filter(conversation=conversation).order_by("seq")
        ] == ["contact", "contact", "ai", "ai"]


def test_no_credits_means_no_answer_and_a_handoff(tenant_a) -> None:
    with tenant_a.schema():
        KnowledgeDocument.objects.create(title=HOURS.title, body=HOURS.body)
        CreditBalance.objects.filter(pk=1).update(balance=0)
        conversation = _conversation()
        _ask(conversation, "When are you open?")
        conversation_drain(conversation_id=conversation.pk)
        (reply,) = _ai_replies(conversation)
        assert "9am" not in reply.content["text"]
        conversation.refresh_from_db()
        assert conversation.ai_active is False
        assert not ReplyCharge.objects.exists()


def test_a_delivered_reply_is_charged_once(tenant_a) -> None:
    with tenant_a.schema():
        before = credit_balance_get()
        reply = _hours_answered()
        undelivered = reply_charge_settle(message_id=reply.pk)
        assert undelivered is not None
        assert undelivered.charged_at is None  # not delivered yet
        message_deliver(message_id=reply.pk)
        reply_charge_settle(message_id=reply.pk)
        reply_charge_settle(message_id=reply.pk)
        assert credit_balance_get() == before - 1
        entry = CreditLedgerEntry.objects.get(message=reply.pk)
        assert (entry.amount, entry.reason) == (-1, "AI reply")


def test_the_sweep_charges_a_delivered_reply_its_delivery_left_uncharged_once(tenant_a) -> None:
    with tenant_a.schema():
        before = credit_balance_get()
        reply = _hours_answered()
        # Recorded sent by a path that ran no delivery hook (a worker died between the two).
        Message.objects.filter(pk=reply.pk).update(status=Message.Status.SENT)
        charge = reply_charge_settle(message_id=reply.pk)
        assert charge is not None
        assert charge.charged_at is not None
        assert not charge.unpaid
        again = reply_charge_settle(message_id=reply.pk)
        assert again is not None
        assert again.charged_at == charge.charged_at
        assert credit_balance_get() == before - 1


def test_a_reply_found_unpayable_stays_unpaid_when_credits_come_back(tenant_a) -> None:
    with tenant_a.schema():
        reply = _hours_answered()
        CreditBalance.objects.filter(pk=1).update(balance=0)
        message_deliver(message_id=reply.pk)
        CreditBalance.objects.filter(pk=1).update(balance=10)
        charge = reply_charge_settle(message_id=reply.pk)
        assert charge is not None
        assert (charge.unpaid, charge.charged_at) == (True, None)
        assert credit_balance_get() == 10


def test_a_reply_delivered_after_the_credits_ran_out_is_sent_and_marked_unpaid(tenant_a) -> None:
    with tenant_a.schema():
        reply = _hours_answered()
        # Spent by others between the answer and its delivery.
        CreditBalance.objects.filter(pk=1).update(balance=0)
        message_deliver(message_id=reply.pk)
        reply.refresh_from_db()
        assert reply.status == "sent"
        charge = ReplyCharge.objects.get(message=reply)
        assert (charge.unpaid, charge.charged_at) == (True, None)
        assert credit_balance_get() == 0
        assert not CreditLedgerEntry.objects.filter(message=reply.pk).exists()


def test_100_concurrent_debits_on_50_credits(committed_db) -> None:
    """100 debits from 25 connections at once (each its own transaction): exactly 50 succeed."""
    slug = committed_db["b"].slug
    with schema_context(slug):
        start = credit_balance_get()
        CreditBalance.objects.filter(pk=1).update(balance=50)
    results: list[str] = []
    barrier = threading.Barrier(25)

    def debit(worker: int) -> None:
        try:
            with schema_context(slug):
                barrier.wait(30)
                for attempt in range(4):
                    try:
                        credit_debit(
                            amount=1,
                            reason="concurrency",
                            idempotency_key=f"concurrent-{worker}-{attempt}",
                        )
                        results.append("ok")
                    except InsufficientCredits:
                        results.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=debit, args=(i,)) for i in range(25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert len(results) == 100
        assert results.count("ok") == 50
        with schema_context(slug):
            assert credit_balance_get() == 0
            entries = CreditLedgerEntry.objects.filter(reason="concurrency").order_by(
                "balance_after"
            )
            assert [e.balance_after for e in entries] == list(range(50))
    finally:
        with schema_context(slug):
            CreditLedgerEntry.objects.filter(reason="concurrency").delete()
            CreditBalance.objects.filter(pk=1).update(balance=start)


def test_50_interleaved_messages_over_5_conversations_with_2_workers(
    committed_db, tmp_path
) -> None:
    slug = committed_db["a"].slug
    with schema_context(slug):
        credit_add(amount=100, reason="ordering test")
        document = KnowledgeDocument.objects.create(title=HOURS.title, body=HOURS.body)
        conversations = [_conversation() for _ in range(5)]
    try:
        with (
            support.celery_worker(tmp_path / "one"),
            support.celery_worker(tmp_path / "two"),
            schema_context(slug),
        ):
            for index in range(50):
                _ask(conversations[index % 5], f"When are you open? question {index}")
            support.wait_until(
                lambda: (
                    Message.objects.filter(sender_type="ai", conversation__in=conversations).count()
                    >= 50
                ),
                timeout=90,
                interval=0.25,
                what="50 replies",
            )
            for conversation in conversations:
                thread = list(Message.objects.filter(conversation=conversation).order_by("seq"))
                questions = [m for m in thread if m.sender_type == "contact"]
                replies = [m for m in thread if m.sender_type == "ai"]
                assert len(questions) == len(replies) == 10
                # Each question answered once, and the answers come in the questions' order.
                assert [r.client_id for r in replies] == [f"reply:{q.pk}" for q in questions]
                seq_of = {m.pk: m.seq for m in questions}
                assert all(seq_of[q.pk] < r.seq for q, r in zip(questions, replies, strict=True))
    finally:
        with schema_context(slug):
            ids = [c.pk for c in conversations]
            ReplyCharge.objects.filter(message__conversation__in=ids).delete()
            Conversation.objects.filter(pk__in=ids).update(last_message=None)
            Message.objects.filter(conversation__in=ids).delete()
            Participant.objects.filter(conversation__in=ids).delete()
            ConversationCursor.objects.filter(conversation__in=ids).delete()
            Conversation.objects.filter(pk__in=ids).delete()
            Contact.objects.filter(conversations__isnull=True).delete()
            Channel.objects.filter(conversations__isnull=True, inbound_events__isnull=True).delete()
            document.delete()
