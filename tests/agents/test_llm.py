"""The LLM client against a fake OpenAI server on 127.0.0.1, through the real `openai` client:
one OpenAI conversation per hub conversation, prompts and instructions, chat-completions mode,
structured output, retries, timeouts, the per-tenant circuit breaker and usage records."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from django.db import connection
from django_tenants.utils import schema_context
from redis.backoff import NoBackoff
from redis.retry import Retry

from agents.llm import (
    LlmInvalidOutput,
    LlmUnavailable,
    LlmUsage,
    intent_schema,
    llm_configured,
    llm_intent,
    llm_reply,
    llm_structured,
)
from agents.models import Agent, LlmCall
from conversations.models import Conversation, Participant
from tests.conftest import TenantInfo
from tests.factories import AgentFactory, ConversationFactory
from tests.fake_openai import CHAT_COMPLETIONS, CONVERSATIONS, RESPONSES, FakeOpenAI

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"intent": {"type": "string"}, "confidence": {"type": "number"}},
    "required": ["intent", "confidence"],
}


def _agent(**fields: Any) -> Agent:
    fields.setdefault("instructions", "You help customers of Acme.")
    return AgentFactory.create(**fields)


def _reply(agent: Agent, conversation: Conversation, text: str = "Where is my order?") -> Any:
    return llm_reply(agent=agent, conversation=conversation, input_text=text)


def test_one_openai_conversation_per_hub_conversation_reused_every_turn(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI
) -> None:
    with tenant_a.schema():
        agent = _agent()
        conversation = ConversationFactory.create()
        first = _reply(agent, conversation, "Hi")
        # A fresh instance, as the next turn's worker would load it.
        second = _reply(agent, Conversation.objects.get(pk=conversation.pk), "Where is my order?")
        stored = Conversation.objects.get(pk=conversation.pk).llm_conversation_id
        other = ConversationFactory.create()
        _reply(agent, other)
        calls = list(LlmCall.objects.order_by("created_at", "id"))

    created = openai_fake.requests_to("/v1/conversations")
    responses = openai_fake.requests_to("/v1/responses")
    assert len(created) == 2  # one per hub conversation
    assert created[0].json()["metadata"] == {"hub_conversation_id": str(conversation.pk)}
    assert stored.startswith("conv_")
    assert [r.json()["conversation"] for r in responses[:2]] == [stored, stored]
    assert responses[2].json()["conversation"] not in ("", stored)
    assert [r.json()["input"] for r in responses[:2]] == ["Hi", "Where is my order?"]
    assert first.text == "You said: Hi"
    assert second.text == "You said: Where is my order?"
    assert second.usage == LlmUsage(input_tokens=21, output_tokens=9, total_tokens=30)
    assert second.model == "gpt-4.1-mini"
    assert second.response_id.startswith("resp_")
    assert responses[0].headers["authorization"] == "Bearer sk-test-key"

    assert len(calls) == 3
    assert {(c.purpose, c.outcome, c.api_mode) for c in calls} == {("reply", "ok", "responses")}
    assert calls[0].agent_id == agent.pk
    assert calls[0].conversation_id == conversation.pk
    assert (calls[0].input_tokens, calls[0].output_tokens, calls[0].total_tokens) == (21, 9, 30)
    assert calls[0].attempts == 2  # the conversation, then the response
    assert calls[1].attempts == 1
    assert calls[1].response_id == second.response_id
    assert calls[1].model == "gpt-4.1-mini"


def test_instructions_carry_the_agents_settings_when_it_has_no_prompt(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI
) -> None:
    with tenant_a.schema():
        agent = _agent(persona="Warm and brief.", language="pt-BR", temperature=0.7)
        llm_reply(
            agent=agent,
            conversation=ConversationFactory.create(),
            input_text="Oi",
            history=[{"role": "user", "content": "ignored in responses mode"}],
            instructions_extra="Knowledge: shipping takes 3 days.",
        )
    body = openai_fake.requests_to("/v1/responses")[0].json()
    assert "prompt" not in body
    assert body["model"] == "gpt-4.1-mini"
    assert body["temperature"] == 0.7
    assert body["input"] == "Oi"
    instructions = body["instructions"]
    assert instructions.startswith("You help customers of Acme.")
    assert "Warm and brief." in instructions
    assert "pt-BR" in instructions
    assert instructions.endswith("Knowledge: shipping takes 3 days.")
    assert "ignored in responses mode" not in str(body)


def test_a_stored_prompt_is_sent_by_id_with_its_variables(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI
) -> None:
    with tenant_a.schema():
        agent = _agent(prompt_id="pmpt_abc123", prompt_variables={"company": "Acme", "year": 2025})
        reply = _reply(agent, ConversationFactory.create())
        agent.model = "gpt-4.1"
        _reply(agent, ConversationFactory.create())
    first, second = (r.json() for r in openai_fake.requests_to("/v1/responses"))
    assert first["prompt"] == {
        "id": "pmpt_abc123",
        "variables": {"company": "Acme", "year": "2025"},
    }
    assert "instructions" not in first
    # The stored prompt names its model unless the agent overrides it.
    assert "model" not in first
    assert reply.model == "gpt-fake-from-prompt"
    assert second["model"] == "gpt-4.1"


def test_chat_completions_mode_sends_the_history_and_no_openai_conversation(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI
) -> None:
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
    ]
    with tenant_a.schema():
        agent = _agent(api_mode=Agent.ApiMode.CHAT_COMPLETIONS, model="llama-3.1-8b")
        conversation = ConversationFactory.create()
        reply = llm_reply(
            agent=agent, conversation=conversation, input_text="Where is my order?", history=history
        )
        call = LlmCall.objects.get()
        assert Conversation.objects.get(pk=conversation.pk).llm_conversation_id == ""
    assert [r.path for r in openai_fake.requests] == ["/v1/chat/completions"]
    body = openai_fake.requests[0].json()
    assert body["model"] == "llama-3.1-8b"
    assert body["temperature"] == 0.3
    assert body["messages"] == [
        {"role": "system", "content": "You help customers of Acme."},
        *history,
        {"role": "user", "content": "Where is my order?"},
    ]
    assert reply.text == "You said: Where is my order?"
    assert reply.usage.total_tokens == 30
    assert (call.api_mode, call.total_tokens, call.outcome) == ("chat_completions", 30, "ok")


def test_a_model_that_refuses_temperature_is_asked_again_without_it(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI
) -> None:
    openai_fake.fail(RESPONSES, 400, code="unsupported_parameter", param="temperature")
    with tenant_a.schema():
        reply = _reply(_agent(model="o4-mini"), ConversationFactory.create())
    first, second = (r.json() for r in openai_fake.requests_to("/v1/responses"))
    assert "temperature" in first
    assert "temperature" not in second
    assert reply.text


def _answer(*output: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A Responses API answer with these output items."""
    return {
        "id": "resp_scripted",
        "object": "response",
        "model": "gpt-scripted",
        "output": list(output),
        "usage": {"input_tokens": 40, "output_tokens": 12, "total_tokens": 52},
        **fields,
    }


def _message(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "content": list(parts)}


def test_a_reply_joins_the_text_parts_of_the_answers_messages(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI
) -> None:
    openai_fake.provider.then(
        RESPONSES,
        200,
        _answer(
            {"type": "reasoning", "summary": []},
            _message(
                {"type": "output_text", "text": "Your order ", "annotations": []},
                {"type": "refusal", "refusal": "not this part"},
            ),
            {"type": "function_call", "name": "lookup", "arguments": "{}"},
            _message({"type": "output_text", "text": "ships today.", "annotations": []}),
        ),
    )
    with tenant_a.schema():
        agent = _agent()
        reply = _reply(agent, ConversationFactory.create(llm_conversation_id="conv_known"))
        call = LlmCall.objects.get()
    assert reply.text == "Your order ships today."
    assert (reply.model, reply.response_id) == ("gpt-scripted", "resp_scripted")
    assert reply.usage == LlmUsage(input_tokens=40, output_tokens=12, total_tokens=52)
    assert (call.outcome, call.model, call.response_id, call.total_tokens) == (
        "ok",
        "gpt-scripted",
        "resp_scripted",
        52,
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>Bad gateway</html>", "not JSON"),
        (b"[]", "not a JSON object"),
        (_answer(usage={"input_tokens": "many"}), "counted its tokens"),
        (_answer(_message({"type": "refusal", "refusal": "No."})), "empty reply"),
        (_answer(output="nothing"), "empty reply"),
    ],
    ids=["not-json", "not-an-object", "bad-usage", "refusal-only", "output-not-a-list"],
)
def test_an_answer_the_hub_cannot_read_is_a_clear_error(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI, body: Any, problem: str
) -> None:
    openai_fake.provider.then(RESPONSES, 200, body)
    with tenant_a.schema():
        conversation = ConversationFactory.create(llm_conversation_id="conv_known")
        with pytest.raises(LlmInvalidOutput, match=problem):
            _reply(_agent(), conversation)
        call = LlmCall.objects.get()
    assert (call.outcome, call.error_code) == ("error", "invalid_output")


def test_structured_output_is_parsed_into_an_object(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI
) -> None:
    openai_fake.structured = {"intent": "refund", "confidence": 0.8}
    with tenant_a.schema():
        data, usage = llm_structured(
            agent=_agent(),
            purpose="intent",
            schema_name="intent",
            schema=SCHEMA,
            input_text="I want my money back",
            instructions="Classify.",
        )
        call = LlmCall.objects.get()
    assert data == {"intent": "refund", "confidence": 0.8}
    assert usage.total_tokens == 30
    body = openai_fake.requests[0].json()
    assert body["text"] == {
        "format": {"type": "json_schema", "name": "intent", "schema": SCHEMA, "strict": True}
    }
    assert body["store"] is False
    assert "conversation" not in body
    assert body["instructions"] == "Classify."
    assert (call.purpose, call.outcome, call.total_tokens) == ("intent", "ok", 30)


def test_structured_output_in_chat_mode_uses_response_format(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI
) -> None:
    with tenant_a.schema():
        data, _ = llm_structured(
            agent=_agent(api_mode=Agent.ApiMode.CHAT_COMPLETIONS),
            purpose="extraction",
            schema_name="intent",
            schema=SCHEMA,
            input_text="hello",
        )
    body = openai_fake.requests[0].json()
    assert openai_fake.requests[0].path == "/v1/chat/completions"
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "intent", "schema": SCHEMA, "strict": True},
    }
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert data["intent"] == "order_status"


@pytest.mark.parametrize(
    ("answer", "problem"),
    [("{not json", "not valid JSON"), ("[1, 2]", "not an object"), ('{"intent": "x"}', "lacks")],
)
def test_malformed_json_from_the_model_is_a_clear_error(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI, answer: str, problem: str
) -> None:
    openai_fake.structured = answer
    with tenant_a.schema():
        with pytest.raises(LlmInvalidOutput, match=problem) as raised:
            llm_structured(
                agent=None, purpose="intent", schema_name="intent", schema=SCHEMA, input_text="x"
            )
        call = LlmCall.objects.get()
    assert raised.value.reason == "invalid_output"
    assert isinstance(raised.value, LlmUnavailable)  # callers' one fallback path covers it
    assert (call.outcome, call.error_code, call.total_tokens) == ("error", "invalid_output", 30)
    assert call.agent is None


def test_intent_and_entities_in_one_structured_call(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI
) -> None:
    openai_fake.structured = {
        "intent": "order_status",
        "confidence": 1.4,
        "entities": [{"type": "order_number", "value": "A-1001"}],
    }
    with tenant_a.schema():
        result = llm_intent(
            agent=_agent(), input_text="Where is A-1001?", intents=["order_status", "refund"]
        )
    assert result.intent == "order_status"
    assert result.confidence == 1.0
    assert result.entities == [{"type": "order_number", "value": "A-1001"}]
    schema = openai_fake.requests[0].json()["text"]["format"]["schema"]
    assert schema == intent_schema(["order_status", "refund"])
    assert schema["properties"]["intent"]["enum"] == ["order_status", "refund", "other"]


def test_a_429_is_retried_after_the_servers_retry_after(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI
) -> None:
    openai_fake.fail(CHAT_COMPLETIONS, 429, retry_after="1", code="rate_limit_exceeded")
    with tenant_a.schema():
        reply = _reply(_agent(api_mode="chat_completions"), ConversationFactory.create())
        call = LlmCall.objects.get()
    first, second = openai_fake.requests
    assert second.at - first.at >= 0.95
    assert reply.text
    assert (call.outcome, call.attempts) == ("ok", 2)


def test_a_retry_after_longer_than_a_worker_may_wait_fails_at_once(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI, settings: Any
) -> None:
    settings.HUB_LLM_RETRY_AFTER_MAX_SECONDS = 2
    openai_fake.fail(RESPONSES, 429, retry_after="60", code="rate_limit_exceeded")
    with tenant_a.schema():
        started = time.monotonic()
        with pytest.raises(LlmUnavailable) as raised:
            _reply(_agent(), ConversationFactory.create())
        assert time.monotonic() - started < 2
        call = LlmCall.objects.get()
    assert raised.value.reason == "rate_limited"
    assert raised.value.retry_after == 60
    assert len(openai_fake.requests_to("/v1/responses")) == 1
    assert (call.outcome, call.error_code) == ("error", "rate_limited")


def test_repeated_server_errors_open_the_circuit_for_that_tenant_only(
    tenant_a: TenantInfo, tenant_b: TenantInfo, openai_fake: FakeOpenAI
) -> None:
    openai_fake.fail(RESPONSES, 500, times=3)
    with tenant_a.schema():
        agent, conversation = _agent(), ConversationFactory.create()
        with pytest.raises(LlmUnavailable) as first:
            _reply(agent, conversation)
        seen = len(openai_fake.requests)
        with pytest.raises(LlmUnavailable) as second:
            _reply(agent, conversation)
        assert len(openai_fake.requests) == seen  # nothing reached the server
        calls = list(LlmCall.objects.order_by("created_at", "id"))
    assert first.value.reason == "server_error"
    assert second.value.reason == "circuit_open"
    assert len(openai_fake.requests_to("/v1/responses")) == 3  # 1 attempt + 2 retries
    assert [(c.outcome, c.error_code, c.attempts) for c in calls] == [
        ("error", "server_error", 4),  # the conversation, then three attempts
        ("circuit_open", "circuit_open", 0),
    ]

    with tenant_b.schema():
        reply = _reply(_agent(), ConversationFactory.create())
    assert reply.text
    assert len(openai_fake.requests) == seen + 2


def test_a_success_between_failures_starts_the_count_again(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI, settings: Any
) -> None:
    """Two failures open the circuit only when they run in a row: a success between them,
    including one that retried after a failure of its own, resets the count."""
    settings.HUB_LLM_MAX_RETRIES = 1
    settings.HUB_LLM_BREAKER_THRESHOLD = 3
    settings.HUB_LLM_BACKOFF_BASE_SECONDS = 0.01
    with tenant_a.schema():
        agent = _agent(api_mode="chat_completions")
        conversation = ConversationFactory.create()
        openai_fake.fail(CHAT_COMPLETIONS, 500, times=1)
        assert _reply(agent, conversation).text  # a failure, then its retry succeeds
        openai_fake.fail(CHAT_COMPLETIONS, 500, times=2)
        with pytest.raises(LlmUnavailable, match="server_error"):
            _reply(agent, conversation)  # two failures: 2 of 3 counted
        assert _reply(agent, conversation).text
        openai_fake.fail(CHAT_COMPLETIONS, 500, times=2)
        with pytest.raises(LlmUnavailable, match="server_error"):
            _reply(agent, conversation)  # 2 of 3 again, not 4
        assert _reply(agent, conversation).text
    assert len(openai_fake.requests_to("/v1/chat/completions")) == 8


def test_with_the_breakers_redis_unreachable_calls_go_through(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The breaker fails open: its check and its reset both meet a Redis that refuses
    connections (nothing listens on port 1), and the model is still asked and answers."""
    unreachable = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr("agents.llm.get_redis", lambda: unreachable)
    with tenant_a.schema():
        agent = _agent(api_mode="chat_completions")
        conversation = ConversationFactory.create()
        assert _reply(agent, conversation).text
        assert _reply(agent, conversation).text
        outcomes = list(LlmCall.objects.values_list("outcome", flat=True))
    assert outcomes == ["ok", "ok"]
    assert len(openai_fake.requests_to("/v1/chat/completions")) == 2


def test_answers_failing_while_conversations_are_created_still_open_the_circuit(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI, settings: Any
) -> None:
    """A partial outage: `POST /v1/conversations` works, `POST /v1/responses` answers 500.
    Each message comes from a new conversation, whose creation succeeds first."""
    settings.HUB_LLM_MAX_RETRIES = 0
    settings.HUB_LLM_BREAKER_THRESHOLD = 3
    openai_fake.fail(RESPONSES, 500, times=10)
    with tenant_a.schema():
        agent = _agent()
        reasons = []
        for _ in range(5):
            with pytest.raises(LlmUnavailable) as raised:
                _reply(agent, ConversationFactory.create())
            reasons.append(raised.value.reason)
    assert reasons == ["server_error"] * 3 + ["circuit_open"] * 2
    assert len(openai_fake.requests_to("/v1/responses")) == 3
    assert len(openai_fake.requests_to("/v1/conversations")) == 3


def test_a_refused_request_is_not_retried_and_does_not_open_the_circuit(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI, settings: Any
) -> None:
    settings.HUB_LLM_BREAKER_THRESHOLD = 1
    openai_fake.fail(RESPONSES, 404, code="model_not_found", times=2)
    with tenant_a.schema():
        agent, conversation = _agent(model="gpt-nope"), ConversationFactory.create()
        for _ in range(2):
            with pytest.raises(LlmUnavailable) as raised:
                _reply(agent, conversation)
            assert raised.value.reason == "rejected"
            assert "model_not_found" in str(raised.value)
        assert _reply(agent, conversation).text
    assert len(openai_fake.requests_to("/v1/responses")) == 3


def test_the_circuit_half_opens_after_the_cool_down_and_a_success_closes_it(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI, settings: Any
) -> None:
    settings.HUB_LLM_BREAKER_COOLDOWN_SECONDS = 0.5
    settings.HUB_LLM_MAX_RETRIES = 0
    settings.HUB_LLM_BREAKER_THRESHOLD = 2
    openai_fake.fail(CHAT_COMPLETIONS, 503, times=3)
    with tenant_a.schema():
        agent = _agent(api_mode="chat_completions")
        conversation = ConversationFactory.create()
        for _ in range(2):
            with pytest.raises(LlmUnavailable, match="server_error"):
                _reply(agent, conversation)
        with pytest.raises(LlmUnavailable, match="circuit_open"):
            _reply(agent, conversation)
        assert len(openai_fake.requests) == 2

        # Half-open: one call goes through; its failure opens the circuit again at once.
        time.sleep(0.6)
        with pytest.raises(LlmUnavailable, match="server_error"):
            _reply(agent, conversation)
        with pytest.raises(LlmUnavailable, match="circuit_open"):
            _reply(agent, conversation)
        assert len(openai_fake.requests) == 3

        # Half-open again: this time the probe succeeds and the circuit closes.
        time.sleep(0.6)
        assert _reply(agent, conversation).text
        assert _reply(agent, conversation).text
        outcomes = list(
            LlmCall.objects.order_by("created_at", "id").values_list("outcome", flat=True)
        )
    assert len(openai_fake.requests) == 5
    assert outcomes == ["error", "error", "circuit_open", "error", "circuit_open", "ok", "ok"]


def test_a_slow_server_times_out(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI, settings: Any
) -> None:
    settings.HUB_LLM_TIMEOUT_SECONDS = 0.3
    settings.HUB_LLM_MAX_RETRIES = 1
    openai_fake.slow(CONVERSATIONS, 1.0, times=2)
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        with pytest.raises(LlmUnavailable) as raised:
            _reply(_agent(), conversation)
        call = LlmCall.objects.get()
        assert Conversation.objects.get(pk=conversation.pk).llm_conversation_id == ""
    assert raised.value.reason == "timeout"
    assert len(openai_fake.requests_to("/v1/conversations")) == 2
    assert openai_fake.requests_to("/v1/responses") == []
    assert (call.outcome, call.error_code, call.attempts) == ("error", "timeout", 2)


def test_a_slow_answer_then_a_fast_one_succeeds(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI, settings: Any
) -> None:
    settings.HUB_LLM_TIMEOUT_SECONDS = 0.3
    openai_fake.slow(RESPONSES, 1.0)
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        _reply(_agent(), conversation)
        assert LlmCall.objects.get().attempts == 3  # conversation, slow response, response


def test_without_a_key_the_llm_is_not_configured(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI, settings: Any
) -> None:
    settings.OPENAI_API_KEY = ""
    assert not llm_configured()
    with tenant_a.schema():
        with pytest.raises(LlmUnavailable) as raised:
            _reply(_agent(), ConversationFactory.create())
        assert not LlmCall.objects.exists()
    assert raised.value.reason == "not_configured"
    assert openai_fake.requests == []


def test_a_call_record_that_cannot_be_written_leaves_the_callers_transaction_usable(
    tenant_a: TenantInfo, openai_fake: FakeOpenAI
) -> None:
    with tenant_a.schema():
        agent = _agent()
        conversation = ConversationFactory.create()
        with connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE agents_llmcall ADD CONSTRAINT refused CHECK (false) NOT VALID"
            )
        assert _reply(agent, conversation).text
        # The test's own transaction, the caller's here, goes on.
        assert Conversation.objects.filter(pk=conversation.pk).exists()
        assert not LlmCall.objects.exists()


def test_outside_a_transaction_a_call_is_recorded_and_a_failed_record_is_harmless(
    committed_db: dict[str, TenantInfo], openai_fake: FakeOpenAI
) -> None:
    with schema_context(committed_db["a"].slug):
        agent = _agent()
        gone = _agent()
        conversation = ConversationFactory.create()
        try:
            assert not connection.in_atomic_block
            assert _reply(agent, conversation).text
            (call,) = LlmCall.objects.filter(conversation_id=conversation.pk)
            assert (call.agent_id, call.outcome) == (agent.pk, "ok")
            # A record naming an agent deleted meanwhile breaks its foreign key.
            Agent.objects.filter(pk=gone.pk).delete()
            assert _reply(gone, conversation).text
            assert LlmCall.objects.filter(conversation_id=conversation.pk).count() == 1
        finally:
            LlmCall.objects.filter(conversation_id=conversation.pk).delete()
            Participant.objects.filter(conversation=conversation).delete()
            conversation.delete()
            conversation.contact.delete()
            conversation.channel.delete()
            agent.delete()
