"""Context: the recent messages and a rolling summary refreshed every N turns (chat completions),
a fresh session after an idle gap or a hand back (a new OpenAI conversation and a recap), the
Redis cache and what happens without it."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from agents.models import Agent, LlmCall
from channels_app.models import Channel, ChannelKind
from conversations.models import Contact, Conversation, Message
from conversations.services.messages import message_receive, message_send
from hub.redis import get_redis
from processing.context import CACHE_TTL_SECONDS, context_prepare
from processing.handoff import conversation_hand_back, conversation_handoff
from processing.models import ReplyCharge
from processing.services import conversation_drain
from tests.factories import AgentFactory, OperatorFactory
from tests.fake_openai import FakeOpenAI


@pytest.fixture(autouse=True)
def _clean_redis() -> Any:
    yield
    client = get_redis()
    for key in client.scan_iter("hub:context:tenant_*"):
        client.delete(key)


def _agent(**fields: Any) -> Agent:
    return AgentFactory.create(instructions="Be brief.", **fields)


def _conversation(agent: Agent) -> Conversation:
    channel = Channel.objects.create(kind=ChannelKind.WEBCHAT, name="Chat", agent=agent, config={})
    return Conversation.objects.create(channel=channel, contact=Contact.objects.create(name="Ada"))


def _turn(conversation: Conversation, text: str) -> Message:
    message, _ = message_receive(
        conversation=conversation,
        contact=conversation.contact,
        content={"type": "text", "text": text},
    )
    conversation_drain(conversation_id=conversation.pk)
    return message


def _summaries() -> int:
    return LlmCall.objects.filter(purpose="summary").count()


def _reply_requests(fake: FakeOpenAI, path: str) -> list[dict[str, Any]]:
    bodies = [r.json() for r in fake.requests_to(path)]
    return [
        b for b in bodies if "response_format" not in b and "format" not in (b.get("text") or {})
    ]


def _age(conversation: Conversation, **delta: float) -> None:
    """Moves the conversation's messages back in time: an idle gap without sleeping."""
    for message in Message.objects.filter(conversation=conversation):
        Message.objects.filter(pk=message.pk).update(
            created_at=message.created_at - datetime.timedelta(**delta)
        )


def test_chat_completions_get_recent_messages_and_a_summary_every_n_turns(
    tenant_a, openai_fake
) -> None:
    with tenant_a.schema():
        agent = _agent(
            api_mode="chat_completions", context_window_messages=4, context_summary_every=2
        )
        conversation = _conversation(agent)
        counts = []
        for turn in range(1, 9):
            openai_fake.structured = {"summary": f"summary {turn}"}
            openai_fake.reply_text = f"reply {turn}"
            _turn(conversation, f"question {turn}")
            counts.append(_summaries())
        # Four messages fit the window until turn 4; from then on, every second turn.
        assert counts == [0, 0, 0, 1, 1, 2, 2, 3]

        replies = Message.objects.filter(conversation=conversation, sender_type="ai").order_by(
            "seq"
        )
        # The summary's tokens are priced into the reply of the turn that made it.
        assert ReplyCharge.objects.get(message=replies[3]).tokens == 60
        assert ReplyCharge.objects.get(message=replies[4]).tokens == 30

    requests = _reply_requests(openai_fake, "/v1/chat/completions")
    assert len(requests) == 8
    first = requests[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user"]
    # Turn 5: the summary made at turn 4 (of turn 1), then the six messages it does not cover.
    fifth = requests[4]["messages"]
    assert "Summary of the older part of this conversation: summary 4" in fifth[0]["content"]
    assert [(m["role"], m["content"]) for m in fifth[1:]] == [
        ("user", "question 2"),
        ("assistant", "reply 2"),
        ("user", "question 3"),
        ("assistant", "reply 3"),
        ("user", "question 4"),
        ("assistant", "reply 4"),
        ("user", "question 5"),
    ]
    # Turn 8: refreshed again, the window back to four messages.
    eighth = requests[7]["messages"]
    assert "summary 8" in eighth[0]["content"]
    assert [m["content"] for m in eighth[1:]] == [
        "question 6",
        "reply 6",
        "question 7",
        "reply 7",
        "question 8",
    ]
    summary_calls = [
        r.json()
        for r in openai_fake.requests_to("/v1/chat/completions")
        if "response_format" in r.json()
    ]
    assert summary_calls[0]["messages"][-1]["content"] == "Customer: question 1\nAssistant: reply 1"
    # The summary so far is folded into the next one.
    assert "summary 4" in summary_calls[1]["messages"][0]["content"]


def test_an_idle_conversation_starts_fresh_with_a_recap(tenant_a, openai_fake) -> None:
    openai_fake.reply_text = "We open at nine."
    with tenant_a.schema():
        agent = _agent(context_idle_reset_minutes=60)
        conversation = _conversation(agent)
        _turn(conversation, "When do you open?")
        conversation.refresh_from_db()
        first_llm_conversation = conversation.llm_conversation_id
        assert first_llm_conversation
        assert _summaries() == 0

        _age(conversation, minutes=59)
        _turn(conversation, "And on Sunday?")
        conversation.refresh_from_db()
        assert conversation.llm_conversation_id == first_llm_conversation

        _age(conversation, minutes=61)
        openai_fake.structured = {"summary": "Ada asked about opening hours, Sunday included."}
        _turn(conversation, "Hello again")
        conversation.refresh_from_db()
        assert conversation.llm_conversation_id not in ("", first_llm_conversation)
        assert _summaries() == 1
        _turn(conversation, "Is the shop far?")
        assert _summaries() == 1
        key = f"hub:context:{tenant_a.slug}:{conversation.pk}"
        assert 0 < get_redis().ttl(key) <= CACHE_TTL_SECONDS

    assert len(openai_fake.requests_to("/v1/conversations")) == 2
    replies = _reply_requests(openai_fake, "/v1/responses")
    assert [r["conversation"] == first_llm_conversation for r in replies] == [
        True,
        True,
        False,
        False,
    ]
    recap = "Ada asked about opening hours, Sunday included."
    assert all(recap not in r["instructions"] for r in replies[:2])
    # The recap stays with the session: the new OpenAI conversation never saw what it holds.
    assert all(recap in r["instructions"] for r in replies[2:])
    (summary_call,) = [
        r.json()
        for r in openai_fake.requests_to("/v1/responses")
        if "format" in r.json().get("text", {})
    ]
    assert summary_call["input"] == (
        "Customer: When do you open?\nAssistant: We open at nine.\n"
        "Customer: And on Sunday?\nAssistant: We open at nine."
    )


def test_a_lost_cache_is_rebuilt_from_the_messages(tenant_a, openai_fake) -> None:
    openai_fake.structured = {"summary": "Earlier: hours."}
    with tenant_a.schema():
        agent = _agent(context_idle_reset_minutes=60)
        conversation = _conversation(agent)
        _turn(conversation, "When do you open?")
        _age(conversation, hours=3)
        _turn(conversation, "Back again")
        assert _summaries() == 1
        llm_conversation = Conversation.objects.get(pk=conversation.pk).llm_conversation_id

        get_redis().delete(f"hub:context:{tenant_a.slug}:{conversation.pk}")
        openai_fake.structured = {"summary": "Rebuilt: hours."}
        _turn(conversation, "Still there?")
        # The session boundary came from the messages' times: the recap is made again, and the
        # current OpenAI conversation (made after the gap) is kept.
        assert _summaries() == 2
        assert Conversation.objects.get(pk=conversation.pk).llm_conversation_id == llm_conversation
    last = _reply_requests(openai_fake, "/v1/responses")[-1]
    assert "Rebuilt: hours." in last["instructions"]


def test_a_hand_back_starts_fresh_with_the_operator_s_words_in_the_recap(
    tenant_a, openai_fake
) -> None:
    with tenant_a.schema():
        agent = _agent()
        operator = OperatorFactory.create(availability="online")
        conversation = _conversation(agent)
        _turn(conversation, "I want a refund")
        conversation_handoff(conversation=conversation, reason="requested")
        message_send(
            conversation=conversation,
            content={"type": "text", "text": "Your refund is approved."},
            sender_type="operator",
            sender_operator=operator,
        )
        message_send(
            conversation=conversation,
            content={"type": "text", "text": "internal: VIP"},
            sender_type="operator",
            sender_operator=operator,
            is_private=True,
        )
        conversation_hand_back(conversation=conversation, operator=operator)
        openai_fake.structured = {"summary": "A team member approved the refund."}
        _turn(conversation, "Thanks! When will I get it?")
    summary_call = [
        r.json()
        for r in openai_fake.requests_to("/v1/responses")
        if "format" in r.json().get("text", {})
    ][-1]
    assert "Team member: Your refund is approved." in summary_call["input"]
    assert "VIP" not in summary_call["input"]
    assert len(openai_fake.requests_to("/v1/conversations")) == 2
    last = _reply_requests(openai_fake, "/v1/responses")[-1]
    assert "A team member approved the refund." in last["instructions"]


def test_without_an_llm_the_idle_reset_still_starts_fresh(tenant_a) -> None:
    with tenant_a.schema():
        agent = _agent(context_idle_reset_minutes=30, context_window_messages=10)
        conversation = _conversation(agent)
        message_receive(
            conversation=conversation,
            contact=conversation.contact,
            content={"type": "text", "text": "old"},
        )
        _age(conversation, hours=1)
        Conversation.objects.filter(pk=conversation.pk).update(llm_conversation_id="conv_stale")
        conversation.refresh_from_db()
        new, _ = message_receive(
            conversation=conversation,
            contact=conversation.contact,
            content={"type": "text", "text": "new"},
        )
        second, _ = message_receive(
            conversation=conversation,
            contact=conversation.contact,
            content={"type": "text", "text": "more"},
        )
        context = context_prepare(conversation=conversation, agent=agent, message=new)
        assert (context.history, context.recap, context.summary, context.tokens) == ([], "", "", 0)
        assert Conversation.objects.get(pk=conversation.pk).llm_conversation_id == ""
        context = context_prepare(conversation=conversation, agent=agent, message=second)
        assert context.history == [{"role": "user", "content": "new"}]
        assert not LlmCall.objects.exists()


def test_without_the_cache_there_are_recent_messages_but_no_summaries(
    tenant_a, openai_fake, settings
) -> None:
    with tenant_a.schema():
        agent = _agent(context_window_messages=1, context_summary_every=1)
        conversation = _conversation(agent)
        texts = ["one", "two", "three"]
        messages = [
            message_receive(
                conversation=conversation,
                contact=conversation.contact,
                content={"type": "text", "text": text},
            )[0]
            for text in texts
        ]
        settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
        context = context_prepare(conversation=conversation, agent=agent, message=messages[2])
        assert context.history == [
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
        ]
        assert context.summary == ""
        assert not LlmCall.objects.exists()


def test_the_context_settings_are_part_of_the_agents_api(tenant_a, tenant_b) -> None:
    client = tenant_a.client()
    created = client.post("/api/v1/agents/", {"name": "Helper"}, format="json").json()
    assert (
        created["context_window_messages"],
        created["context_summary_every"],
        created["context_idle_reset_minutes"],
        created["assignment_strategy"],
        created["handoff_on_negative_sentiment"],
    ) == (20, 10, 1440, "round_robin", True)
    changed = client.patch(
        f"/api/v1/agents/{created['id']}/",
        {
            "context_window_messages": 6,
            "context_summary_every": 0,
            "assignment_strategy": "least_busy",
        },
        format="json",
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()["assignment_strategy"] == "least_busy"
    for bad in ({"context_window_messages": 0}, {"assignment_strategy": "random"}):
        refused = client.patch(f"/api/v1/agents/{created['id']}/", bad, format="json")
        assert refused.status_code == 400
        assert set(refused.json()["error"]["details"]) == set(bad)
    other = tenant_b.client().patch(
        f"/api/v1/agents/{created['id']}/", {"context_window_messages": 3}, format="json"
    )
    assert other.status_code == 404
    with tenant_a.schema():
        assert Agent.objects.get(pk=created["id"]).context_window_messages == 6
