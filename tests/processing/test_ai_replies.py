"""AI replies through the real `openai` client against a fake OpenAI server."""

from __future__ import annotations

import json
import os
import signal
import threading
from datetime import timedelta

import psycopg
import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from agents.models import LlmCall
from billing.selectors import credit_balance_get
from channels_app.models import Channel, ChannelKind
from conversations.models import Contact, Conversation, Message, Participant
from conversations.services.messages import message_receive
from hub.context import request_id_var
from inbox.services import inbox_take_over
from processing.jobs import sweep
from processing.models import ConversationCursor, ReplyCharge
from processing.services import conversation_drain
from tests import support
from tests.factories import AgentFactory, OperatorFactory
from tests.fake_openai import RESPONSES, FakeOpenAI, fake_openai
from tests.support import database_url_for_tests


def _conversation() -> Conversation:
    agent = AgentFactory.create(fallback_reply="We will get back to you soon.")
    channel = Channel.objects.create(kind=ChannelKind.WEBCHAT, name="Chat", agent=agent, config={})
    contact = Contact.objects.create(name="Visitor")
    return Conversation.objects.create(channel=channel, contact=contact)


def _ask(conversation: Conversation, text: str) -> None:
    message_receive(
        conversation=conversation,
        contact=conversation.contact,
        content={"type": "text", "text": text},
    )


def test_the_agent_answers_through_the_llm_and_the_reply_is_priced(tenant_a, openai_fake) -> None:
    openai_fake.reply_text = "We open at nine."
    with tenant_a.schema():
        conversation = _conversation()
        _ask(conversation, "When do you open?")
        _ask(conversation, "And on Sunday?")
        conversation_drain(conversation_id=conversation.pk)
        replies = list(
            Message.objects.filter(conversation=conversation, sender_type="ai").order_by("seq")
        )
        assert [r.content["text"] for r in replies] == ["We open at nine."] * 2
        charge = ReplyCharge.objects.get(message=replies[0])
        assert (charge.amount, charge.tokens) == (1, 30)
    assert len(openai_fake.requests_to("/v1/conversations")) == 1
    assert len(openai_fake.requests_to("/v1/responses")) == 2


def test_a_failing_llm_opens_the_circuit_and_sends_the_fallback_free(tenant_a, openai_fake) -> None:
    openai_fake.fail(RESPONSES, 500, times=20)
    with tenant_a.schema():
        balance = credit_balance_get()
        conversation = _conversation()
        _ask(conversation, "Hello?")
        conversation_drain(conversation_id=conversation.pk)
        (reply,) = Message.objects.filter(conversation=conversation, sender_type="ai")
        assert reply.content["text"] == "We will get back to you soon."
        assert not ReplyCharge.objects.filter(message=reply).exists()
        conversation.refresh_from_db()
        assert (conversation.ai_active, conversation.status) == (False, "pending")
        assert credit_balance_get() == balance
        # The circuit is open now: the next conversation does not even try.
        before = len(openai_fake.requests_to("/v1/responses"))
        other = _conversation()
        _ask(other, "Anyone?")
        conversation_drain(conversation_id=other.pk)
        assert len(openai_fake.requests_to("/v1/responses")) == before


def test_a_worker_killed_mid_message_answers_once_after_restart(
    committed_db, tmp_path, monkeypatch
) -> None:
    slug = committed_db["a"].slug
    with fake_openai() as openai:
        openai.reply_text = "Answered."
        openai.slow(RESPONSES, 30)
        _workers_reach(openai, monkeypatch)
        with schema_context(slug):
            conversation = _conversation()
        try:
            with support.celery_worker(tmp_path / "first") as first:
                with schema_context(slug):
                    _ask(conversation, "Are you there?")
                support.wait_until(
                    lambda: openai.requests_to("/v1/responses"), timeout=30, what="the LLM call"
                )
                os.killpg(first.popen.pid, signal.SIGKILL)
                first.popen.wait(10)
            with schema_context(slug):
                assert not Message.objects.filter(
                    conversation=conversation, sender_type="ai"
                ).exists()
                # The killed task is never acknowledged; the sweeper finds the waiting message
                # once the dead worker's lease has run out.
                Message.objects.filter(conversation=conversation).update(
                    created_at=timezone.now() - timedelta(minutes=5)
                )
                (lease,) = ConversationCursor.objects.filter(conversation=conversation)
                assert lease.held_by is not None
                assert lease.held_until is not None
                assert lease.held_until > timezone.now()
                ConversationCursor.objects.filter(conversation=conversation).update(
                    held_until=timezone.now() - timedelta(seconds=1)
                )
            with support.celery_worker(tmp_path / "second"), schema_context(slug):
                assert sweep()["conversations"] == 1
                support.wait_until(
                    lambda: Message.objects.filter(
                        conversation=conversation, sender_type="ai"
                    ).exists(),
                    timeout=30,
                    what="the answer after the restart",
                )
                replies = Message.objects.filter(conversation=conversation, sender_type="ai")
                assert [r.content["text"] for r in replies] == ["Answered."]
                assert ConversationCursor.objects.get(conversation=conversation).processed_seq == 1
        finally:
            with schema_context(slug):
                _conversation_delete(conversation)


def test_a_threads_pool_worker_answers_several_conversations_at_once(
    committed_db, tmp_path, monkeypatch
) -> None:
    """A worker with a threads pool (HUB_WORKER_POOL=threads) keeps several LLM calls in
    flight, as a real model's seconds per answer need; each task works in its own tenant's
    schema while another tenant's runs beside it, and its log lines keep its own request id."""
    a, b = committed_db["a"].slug, committed_db["b"].slug
    slugs = [a, b, a]
    parties = len(slugs)
    with fake_openai() as openai:
        openai.reply_text = "Answered."
        # Held until all three are in flight: a worker answering one at a time never gets there.
        met = openai.together(RESPONSES, parties, timeout=15)
        _workers_reach(openai, monkeypatch)
        conversations = []
        for slug in slugs:
            with schema_context(slug):
                conversations.append(_conversation())
        asked = list(zip(slugs, conversations, strict=True))
        try:
            with support.celery_worker(tmp_path, pool="threads", concurrency=4) as worker:
                for index, (slug, conversation) in enumerate(asked):
                    token = request_id_var.set(f"trace-thread-{index}")
                    try:
                        with schema_context(slug):
                            _ask(conversation, f"Question {index}")
                    finally:
                        request_id_var.reset(token)

                def answered() -> bool:
                    count = 0
                    for slug, conversation in asked:
                        with schema_context(slug):
                            count += Message.objects.filter(
                                conversation=conversation, sender_type="ai"
                            ).count()
                    return count == parties

                support.wait_until(answered, timeout=60, what="the three answers")
                log = worker.log()
            assert met == [True] * parties
            for slug, conversation in asked:
                with schema_context(slug):
                    (reply,) = Message.objects.filter(conversation=conversation, sender_type="ai")
                    assert reply.content["text"] == "Answered."
            calls = [json.loads(line) for line in log.splitlines() if "/v1/responses" in line]
            assert sorted(call["request_id"] for call in calls) == [
                f"trace-thread-{index}" for index in range(parties)
            ]
            assert '"level": "ERROR"' not in log
        finally:
            for slug, conversation in asked:
                with schema_context(slug):
                    _conversation_delete(conversation)


def test_threads_waiting_on_the_model_hold_no_connection_of_the_pool(
    committed_db, tmp_path, monkeypatch
) -> None:
    """A threads pool worker shares one pool of connections between its threads, and a thread
    gives its connection back while the model thinks: three answers wait on the model at once
    with a pool of one connection. (Holding it, the second thread would wait for the first's
    answer, which waits for the other two: the pool's timeout or the model's would end it.)"""
    a = committed_db["a"].slug
    parties = 3
    with fake_openai() as openai:
        openai.reply_text = "Answered."
        met = openai.together(RESPONSES, parties, timeout=20)
        _workers_reach(openai, monkeypatch)
        monkeypatch.setenv("HUB_DB_POOL_MAX_SIZE", "1")
        monkeypatch.setenv("HUB_DB_POOL_TIMEOUT_SECONDS", "10")
        with schema_context(a):
            conversations = [_conversation() for _ in range(parties)]
        try:
            with support.celery_worker(tmp_path, pool="threads", concurrency=parties) as worker:
                with schema_context(a):
                    for index, conversation in enumerate(conversations):
                        _ask(conversation, f"Question {index}")

                def answered() -> bool:
                    with schema_context(a):
                        return Message.objects.filter(
                            conversation__in=conversations, sender_type="ai"
                        ).count() == len(conversations)

                support.wait_until(answered, timeout=60, what="the three answers")
                log = worker.log()
            assert met == [True] * parties
            assert '"level": "ERROR"' not in log
        finally:
            with schema_context(a):
                for conversation in conversations:
                    _conversation_delete(conversation)


def test_no_transaction_is_held_while_the_model_answers_and_a_takeover_meanwhile_wins(
    committed_db, tmp_path, monkeypatch
) -> None:
    """The conversation stays held (a lease on its cursor) but no transaction is open while
    the model answers: a real model's seconds would otherwise keep a transaction and its
    snapshot open per answer. An operator who takes the conversation over meanwhile has it: the
    answer is dropped, unsent and uncharged, and the message counts as processed. (With the
    model called inside the drain's transaction, taking over waited for the model to answer.)"""
    slug = committed_db["a"].slug
    with fake_openai() as openai:
        openai.reply_text = "Answered."
        arrived, release = openai.hold(RESPONSES)
        _workers_reach(openai, monkeypatch)
        with schema_context(slug):
            conversation = _conversation()
            operator = OperatorFactory.create()
        try:
            with support.celery_worker(tmp_path) as worker:
                with schema_context(slug):
                    _ask(conversation, "Are you there?")
                assert arrived.wait(30), "the model call never came"
                with psycopg.connect(database_url_for_tests(), autocommit=True) as observer:
                    transactions = observer.execute(
                        "SELECT state FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
                    ).fetchall()
                with schema_context(slug):
                    (lease,) = ConversationCursor.objects.filter(conversation=conversation)
                # Released by then at the latest: an operator who had to wait for the model
                # would take over only once it answered.
                safety = threading.Timer(20, release.set)
                safety.start()
                with schema_context(slug):
                    inbox_take_over(conversation=conversation, operator=operator)
                taken_while_the_model_worked = not release.is_set()
                release.set()
                safety.cancel()

                def processed() -> bool:
                    with schema_context(slug):
                        return ConversationCursor.objects.filter(
                            conversation=conversation, processed_seq=1
                        ).exists()

                support.wait_until(processed, timeout=30, what="the message processed")
                log = worker.log()
            assert transactions == []
            assert lease.held_by is not None
            assert lease.held_until is not None
            assert lease.held_until > timezone.now()
            assert taken_while_the_model_worked
            with schema_context(slug):
                assert not Message.objects.filter(
                    conversation=conversation, sender_type="ai"
                ).exists()
                assert not ReplyCharge.objects.exists()
                assert LlmCall.objects.filter(conversation_id=conversation.pk).count() == 1
            assert "a person took the conversation over" in log
        finally:
            with schema_context(slug):
                _conversation_delete(conversation)
                operator.delete()


def _workers_reach(openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker processes the test starts answer through the fake OpenAI."""
    monkeypatch.setenv("HUB_TEST_OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", openai.base_url)
    monkeypatch.setenv("HUB_LLM_TIMEOUT_SECONDS", "60")


def _conversation_delete(conversation: Conversation) -> None:
    ReplyCharge.objects.filter(message__conversation=conversation).delete()
    Conversation.objects.filter(pk=conversation.pk).update(last_message=None)
    Message.objects.filter(conversation=conversation).delete()
    Participant.objects.filter(conversation=conversation).delete()
    ConversationCursor.objects.filter(conversation=conversation).delete()
    channel = conversation.channel
    conversation.delete()
    channel.delete()
    if channel.agent is not None:
        channel.agent.delete()


def test_the_sweep_looks_back_one_day(tenant_a, tenant_b) -> None:
    """A message left waiting is found a minute on, and no longer once its conversation has
    been quiet for longer than the sweep's window (processing.selectors.SWEEP_WINDOW)."""
    from processing.selectors import SWEEP_WINDOW, messages_stranded_unprocessed

    def backdate(conversation: Conversation, ago: timedelta) -> None:
        Message.objects.filter(conversation=conversation).update(created_at=timezone.now() - ago)
        Conversation.objects.filter(pk=conversation.pk).update(
            last_activity_at=timezone.now() - ago
        )

    with tenant_a.schema():
        waiting, quiet = _conversation(), _conversation()
        _ask(waiting, "Anyone?")
        _ask(quiet, "Hello?")
        backdate(waiting, timedelta(hours=20))
        backdate(quiet, SWEEP_WINDOW + timedelta(hours=1))
        found = set(messages_stranded_unprocessed().values_list("conversation_id", flat=True))
        assert found == {waiting.pk}
    with tenant_b.schema():
        assert not messages_stranded_unprocessed().exists()
