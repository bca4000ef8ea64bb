"""The one LLM client: every call to OpenAI (or an OpenAI-compatible server) goes through here.

Two ways to talk to the model, chosen per agent (`Agent.api_mode`):

- `responses` (default): the OpenAI Responses API. Each hub conversation gets one OpenAI
  conversation (`POST /v1/conversations`, created lazily on the first reply, its id kept in
  `Conversation.llm_conversation_id`) and every reply is a `POST /v1/responses` with
  `conversation: <id>`, so OpenAI holds the history. A stored prompt (`Agent.prompt_id`) is sent
  by id with its variables; otherwise the agent's instructions are sent.
- `chat_completions`: `POST /v1/chat/completions` for OpenAI-compatible servers without the
  Responses API; the caller's history is sent on every call.

Every call has a timeout per attempt, retries with exponential backoff and jitter (a 429's
`Retry-After` is honoured up to `HUB_LLM_RETRY_AFTER_MAX_SECONDS`; a longer wish fails the call so
a worker is never parked), a circuit breaker per tenant in Redis, and one `LlmCall` row recording
tokens, latency and outcome. Whatever goes wrong surfaces as `LlmUnavailable` with a `reason`, so
callers fall back (the agent's fallback reply, or a handoff) without knowing HTTP.

The openai client's own retries are off: ours must be seen by the breaker.
"""

from __future__ import annotations

import contextlib
import email.utils
import enum
import functools
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from agents.models import Agent, LlmCall
from conversations.models import Conversation
from hub.db import connection_return_to_pool, insert
from hub.redis import get_redis
from tenants.connection import tenant_connection

if TYPE_CHECKING:
    # Imported where a call is made, not here: the package takes a second and some 20 MB to
    # load, which the web processes, beat and management commands would pay for on every start
    # and never use (docs/performance.md, change 45). A worker loads it before its pool starts
    # (`llm_client_load`).
    import openai

logger = logging.getLogger(__name__)

T = TypeVar("T")

RESPONSES = Agent.ApiMode.RESPONSES.value
CHAT_COMPLETIONS = Agent.ApiMode.CHAT_COMPLETIONS.value
_HISTORY_ROLES = frozenset({"system", "developer", "user", "assistant"})
# Texts per embeddings request (the API takes up to 2048; smaller batches fail smaller).
EMBED_BATCH = 64


# --- The interface -------------------------------------------------------------------------


@dataclass(frozen=True)
class LlmUsage:
    input_tokens: int
    output_tokens: int
    total_tokens: int


NO_USAGE = LlmUsage(input_tokens=0, output_tokens=0, total_tokens=0)


@dataclass(frozen=True)
class LlmReply:
    text: str
    usage: LlmUsage
    model: str
    response_id: str


class LlmUnavailable(Exception):
    """No answer from the LLM; the caller falls back. `reason` is one of `circuit_open`,
    `rate_limited`, `server_error`, `timeout`, `connection_failed`, `not_configured`,
    `auth_failed`, `rejected` (the server refused the request: bad model, bad prompt id…),
    `client_error` (the openai client gave up on its own) or `invalid_output` (see
    `LlmInvalidOutput`). `retry_after` is the server's wish in seconds,
    when it gave one."""

    def __init__(self, reason: str, message: str = "", *, retry_after: float | None = None):
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


class LlmInvalidOutput(LlmUnavailable):
    """The model answered, but not with what was asked: malformed or non-object JSON for a
    structured call, missing required keys, an empty reply or a refusal. The service itself
    is healthy, so this does not count towards the circuit breaker."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_output", message)


def llm_configured() -> bool:
    """False without `OPENAI_API_KEY`: the offline responder answers instead."""
    return bool(settings.OPENAI_API_KEY)


def llm_reply(
    *,
    agent: Agent,
    conversation: Conversation,
    input_text: str,
    history: list[dict[str, str]] | None = None,
    instructions_extra: str = "",
) -> LlmReply:
    """The agent's answer to `input_text` in `conversation`.

    Responses mode creates the OpenAI conversation on the first call and stores its id on
    `conversation` (a conditional update, so two racing workers end up on one id); `history` is
    ignored there, the OpenAI conversation holds it. Chat-completions mode sends the system
    instructions, `history` (earlier turns as `{"role", "content"}`, without this input) and the
    input; a stored prompt cannot be used there, so the agent's instructions are sent.
    Raises `LlmUnavailable`; writes one `LlmCall` row whatever the outcome (none when the LLM is
    not configured).
    """
    mode = agent.api_mode or RESPONSES
    with _CallRecord(
        purpose=LlmCall.Purpose.REPLY, agent=agent, conversation_id=conversation.pk, api_mode=mode
    ) as record:
        client = record.client
        if mode == CHAT_COMPLETIONS:
            messages = _chat_messages(
                system=_agent_instructions(agent, instructions_extra),
                history=history or [],
                user=input_text,
            )
            completion = record.attempt(
                _without_rejected_temperature(
                    lambda **extra: client.chat.completions.create(
                        model=agent.model or settings.HUB_LLM_MODEL,
                        messages=messages,  # type: ignore[arg-type]
                        **extra,
                    ),
                    temperature=agent.temperature,
                )
            )
            usage, model, response_id = _chat_usage(completion), completion.model, completion.id
            record.succeeded(usage=usage, model=model or "", response_id=response_id or "")
            text = _chat_text(completion)
        else:
            llm_conversation_id = _llm_conversation_ensure(conversation, record)
            params: dict[str, Any] = {"conversation": llm_conversation_id, "input": input_text}
            if agent.prompt_id:
                # A stored prompt carries its own instructions and, unless the agent names one,
                # its model. Only what this turn adds goes as instructions.
                params["prompt"] = {
                    "id": agent.prompt_id,
                    "variables": _prompt_variables(agent.prompt_variables),
                }
                if agent.model:
                    params["model"] = agent.model
                if instructions_extra.strip():
                    params["instructions"] = instructions_extra.strip()
            else:
                params["model"] = agent.model or settings.HUB_LLM_MODEL
                instructions = _agent_instructions(agent, instructions_extra)
                if instructions:
                    params["instructions"] = instructions
            response = record.attempt(
                _without_rejected_temperature(
                    lambda **extra: _responses_create(client, {**params, **extra}),
                    temperature=agent.temperature,
                )
            )
            usage = response.usage
            record.succeeded(usage=usage, model=response.model, response_id=response.id)
            text = response.output_text
        if not text.strip():
            raise LlmInvalidOutput("The model returned an empty reply.")
        return LlmReply(text=text, usage=usage, model=record.model, response_id=record.response_id)


def llm_structured(
    *,
    agent: Agent | None,
    purpose: str,
    schema_name: str,
    schema: dict[str, Any],
    input_text: str,
    instructions: str = "",
) -> tuple[dict[str, Any], LlmUsage]:
    """One structured-output call: the model must answer with JSON matching `schema` (strict
    mode, so every object in it needs `additionalProperties: false` and all keys required).

    Not part of any OpenAI conversation (`store` off): intent detection, summaries and
    extractions must not leak into the reply history. Raises `LlmInvalidOutput` when the answer
    is not a JSON object or lacks a required top-level key; `LlmUnavailable` otherwise.
    """
    if purpose not in LlmCall.Purpose.values:
        raise ValueError(f"Unknown LLM call purpose: {purpose!r}")
    mode = (agent.api_mode if agent else settings.HUB_LLM_API_MODE) or RESPONSES
    requested_model = (agent.model if agent else "") or settings.HUB_LLM_MODEL
    with _CallRecord(purpose=purpose, agent=agent, conversation_id=None, api_mode=mode) as record:
        client = record.client
        if mode == CHAT_COMPLETIONS:
            chat: dict[str, Any] = {
                "model": requested_model,
                "messages": _chat_messages(system=instructions, history=[], user=input_text),
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": schema_name, "schema": schema, "strict": True},
                },
            }
            completion = record.attempt(lambda: client.chat.completions.create(**chat))
            usage, model, response_id = _chat_usage(completion), completion.model, completion.id
            record.succeeded(usage=usage, model=model or "", response_id=response_id or "")
            text = _chat_text(completion)
        else:
            params: dict[str, Any] = {
                "model": requested_model,
                "input": input_text,
                "store": False,
                "text": {
                    "format": {
                        "type": "json_schema",
                        "name": schema_name,
                        "schema": schema,
                        "strict": True,
                    }
                },
            }
            if instructions:
                params["instructions"] = instructions
            response = record.attempt(lambda: _responses_create(client, params))
            usage = response.usage
            record.succeeded(usage=usage, model=response.model, response_id=response.id)
            text = response.output_text
        return _parse_object(text, schema), usage


def llm_embed(texts: Sequence[str]) -> list[list[float]]:
    """One embedding vector per text, in order, from the embeddings API
    (`HUB_EMBEDDING_MODEL`, `HUB_EMBEDDING_DIMENSIONS`), in batches of `EMBED_BATCH` texts.

    Each batch is one call with the same retries and per-tenant breaker as every other call,
    and one `LlmCall` row (purpose `embedding`). Raises `LlmUnavailable`, or `LlmInvalidOutput`
    when the answer does not hold one vector of the asked size per text.
    """
    vectors: list[list[float]] = []
    for start in range(0, len(texts), EMBED_BATCH):
        vectors.extend(_embed_batch([text or " " for text in texts[start : start + EMBED_BATCH]]))
    return vectors


def _embed_batch(batch: list[str]) -> list[list[float]]:
    dimensions = settings.HUB_EMBEDDING_DIMENSIONS
    with _CallRecord(
        purpose=LlmCall.Purpose.EMBEDDING,
        agent=None,
        conversation_id=None,
        api_mode=settings.HUB_LLM_API_MODE or RESPONSES,
    ) as record:
        client = record.client
        answer = record.attempt(
            lambda: client.embeddings.create(
                model=settings.HUB_EMBEDDING_MODEL,
                input=batch,
                dimensions=dimensions,
                encoding_format="float",
            )
        )
        usage = getattr(answer, "usage", None)
        record.succeeded(
            usage=_usage(getattr(usage, "prompt_tokens", 0), 0, getattr(usage, "total_tokens", 0)),
            model=answer.model or settings.HUB_EMBEDDING_MODEL,
            response_id="",
        )
        items = sorted(answer.data or [], key=lambda item: item.index)
        if len(items) != len(batch) or any(len(item.embedding) != dimensions for item in items):
            raise LlmInvalidOutput(f"Expected {len(batch)} vector(s) of {dimensions} dimensions.")
        return [[float(value) for value in item.embedding] for item in items]


# --- Intent and entities -------------------------------------------------------------------


@dataclass(frozen=True)
class LlmIntent:
    intent: str
    confidence: float
    entities: list[dict[str, str]]
    usage: LlmUsage


def intent_schema(intents: Sequence[str] = ()) -> dict[str, Any]:
    """The strict JSON schema of an intent answer; `intents` (plus `other`) bounds the intent."""
    intent: dict[str, Any] = {"type": "string"}
    if intents:
        intent["enum"] = [*dict.fromkeys([*intents, "other"])]
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "intent": intent,
            "confidence": {"type": "number", "description": "0 to 1"},
            "entities": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"type": {"type": "string"}, "value": {"type": "string"}},
                    "required": ["type", "value"],
                },
            },
        },
        "required": ["intent", "confidence", "entities"],
    }


def llm_intent(*, agent: Agent | None, input_text: str, intents: Sequence[str] = ()) -> LlmIntent:
    """The intent of a customer's message, with the model's confidence (clamped to 0..1) and
    the entities it names (`{"type", "value"}`), in one structured-output call."""
    instructions = (
        "Classify the customer's message: its intent, your confidence from 0 to 1, and the "
        "entities it mentions (type and value, e.g. order_number, email, date, product)."
    )
    if intents:
        instructions += " Choose the intent from: " + ", ".join([*intents, "other"]) + "."
    data, usage = llm_structured(
        agent=agent,
        purpose=LlmCall.Purpose.INTENT,
        schema_name="intent",
        schema=intent_schema(intents),
        input_text=input_text,
        instructions=instructions,
    )
    try:
        confidence = min(1.0, max(0.0, float(data["confidence"])))
    except (TypeError, ValueError) as error:
        raise LlmInvalidOutput("The confidence is not a number.") from error
    entities = [
        {"type": str(item.get("type", "")), "value": str(item.get("value", ""))}
        for item in data.get("entities") or []
        if isinstance(item, dict)
    ]
    return LlmIntent(
        intent=str(data["intent"]), confidence=confidence, entities=entities, usage=usage
    )


# --- The circuit breaker -------------------------------------------------------------------

# State per key: a hash with the count of failed attempts in a row and, once open, the time
# (Redis' clock, ms) until which it stays open; plus a probe key held by the one call let through
# when half-open. Redis' clock, so every worker agrees.
_BREAKER_ALLOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'open_until', 'failures')
local open_until = tonumber(state[1] or '0')
if open_until == 0 then
  if state[2] then return 3 end
  return 1
end
if now < open_until then return 0 end
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return 2 end
return 0
"""
_BREAKER_FAILURE = """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if failures >= tonumber(ARGV[1]) then
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  redis.call('HSET', KEYS[1], 'open_until', now + tonumber(ARGV[2]))
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""
_BREAKER_IS_OPEN = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until > now then return 1 end
return 0
"""


class Admission(enum.Enum):
    """What the breaker said of a call (its `allow` script's answer)."""

    REFUSED = 0
    # Closed, with no failure counted: a success has nothing to reset, and resets nothing (one
    # Redis round trip fewer on almost every call). A failure another process counts meanwhile
    # stays counted until the next success that finds it.
    CLEAN = 1
    # Half-open: this call is the one let through.
    PROBE = 2
    # Closed, with failures counted since the last success (or the breaker's store unreachable).
    COUNTED = 3


@dataclass(frozen=True)
class CircuitBreaker:
    """A circuit breaker shared by every process through Redis, one circuit per `scope` (here a
    tenant's schema). Closed: calls go through and failed attempts are counted; `threshold` in
    a row open it. Open: calls are refused for `cooldown` seconds. Then half-open: one call is
    let through; its success closes the circuit, its failure opens it for another cool-down.

    Redis being down fails open (calls go through): an outage of the breaker's store must not
    become an outage of the LLM.
    """

    name: str
    threshold: int
    cooldown: float
    probe_ttl: float

    def _keys(self, scope: str) -> list[str]:
        base = f"hub:breaker:{self.name}:{scope}"
        return [base, f"{base}:probe"]

    def admit(self, scope: str) -> Admission:
        try:
            script = get_redis().register_script(_BREAKER_ALLOW)
            return Admission(int(script(keys=self._keys(scope), args=[_ms(self.probe_ttl)])))
        except redis.RedisError:
            logger.warning(
                "circuit breaker unreachable, failing open", extra={"breaker": self.name}
            )
            return Admission.COUNTED

    def is_open(self, scope: str) -> bool:
        try:
            script = get_redis().register_script(_BREAKER_IS_OPEN)
            return bool(int(script(keys=self._keys(scope))))
        except redis.RedisError:
            return False

    def record_failure(self, scope: str) -> bool:
        """Counts one failed attempt; True when this opened (or re-opened) the circuit."""
        try:
            script = get_redis().register_script(_BREAKER_FAILURE)
            memory = max(_ms(self.cooldown) * 10, 3_600_000)
            opened = bool(
                int(
                    script(
                        keys=self._keys(scope),
                        args=[self.threshold, _ms(self.cooldown), memory],
                    )
                )
            )
        except redis.RedisError:
            return False
        if opened:
            logger.warning("circuit opened", extra={"breaker": self.name, "scope": scope})
        return opened

    def record_success(self, scope: str) -> None:
        with contextlib.suppress(redis.RedisError):
            get_redis().delete(*self._keys(scope))

    def reset(self, scope: str) -> None:
        """Closes the circuit now (an operator's action, or a test's clean slate)."""
        self.record_success(scope)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def llm_breaker() -> CircuitBreaker:
    attempts = settings.HUB_LLM_MAX_RETRIES + 1
    return CircuitBreaker(
        name="llm",
        threshold=max(1, settings.HUB_LLM_BREAKER_THRESHOLD),
        cooldown=settings.HUB_LLM_BREAKER_COOLDOWN_SECONDS,
        # Long enough for the probe call to finish all its attempts; a crashed probe frees it.
        probe_ttl=attempts
        * (settings.HUB_LLM_TIMEOUT_SECONDS + settings.HUB_LLM_BACKOFF_MAX_SECONDS),
    )


def llm_circuit_reset(*, schema: str) -> None:
    """Closes a tenant's LLM circuit at once."""
    llm_breaker().reset(schema)


# --- Calls: client, attempts, records ------------------------------------------------------


def llm_client_load() -> None:
    """Loads the openai package now: in a worker before it forks its pool, so that each pool
    process does not pay for it on its first call."""
    import openai  # noqa: F401


@functools.cache
def _client(api_key: str, base_url: str, timeout: float) -> openai.OpenAI:
    import openai

    # One client (one connection pool) per process and endpoint.
    return openai.OpenAI(api_key=api_key, base_url=base_url or None, timeout=timeout, max_retries=0)


@dataclass(frozen=True)
class _Failure:
    reason: str
    transient: bool
    retry_after: float | None = None


def _classify(error: Exception) -> _Failure | None:
    """What an openai exception means for us; None for anything that is not the service's."""
    import openai

    if isinstance(error, openai.APITimeoutError):
        return _Failure("timeout", transient=True)
    if isinstance(error, openai.APIConnectionError):
        return _Failure("connection_failed", transient=True)
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        if status == 429:
            return _Failure("rate_limited", transient=True, retry_after=_retry_after(error))
        if status >= 500 or status in (408, 409):
            return _Failure("server_error", transient=True, retry_after=_retry_after(error))
        if status in (401, 403):
            return _Failure("auth_failed", transient=False)
        return _Failure("rejected", transient=False)
    if isinstance(error, openai.APIError):
        # An answer that could not be read (not JSON, not the expected shape).
        return _Failure("server_error", transient=True)
    return None


def _retry_after(error: openai.APIStatusError) -> float | None:
    """The server's wish: `retry-after-ms` (OpenAI's), else `Retry-After` (seconds or a date)."""
    headers = error.response.headers
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
    except ValueError:
        pass
    value = headers.get("retry-after", "")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _backoff_seconds(attempt: int, *, retry_after: float | None) -> float:
    """Exponential backoff with jitter after the `attempt`-th failure (1-based), never sooner
    than the server asked."""
    ceiling = min(
        settings.HUB_LLM_BACKOFF_MAX_SECONDS,
        settings.HUB_LLM_BACKOFF_BASE_SECONDS * 2 ** (attempt - 1),
    )
    jittered = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security
    return max(jittered, retry_after or 0.0)


@dataclass
class _CallRecord:
    """One public call: the breaker check, the attempts, and the `LlmCall` row at the end."""

    purpose: str
    agent: Agent | None
    conversation_id: uuid.UUID | None
    api_mode: str
    schema: str = field(default_factory=lambda: tenant_connection().schema_name)
    breaker: CircuitBreaker = field(default_factory=llm_breaker)
    admission: Admission = Admission.COUNTED
    attempts: int = 0
    usage: LlmUsage = NO_USAGE
    model: str = ""
    response_id: str = ""
    started: float = field(default_factory=time.monotonic)

    @property
    def client(self) -> openai.OpenAI:
        return _client(
            settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL, settings.HUB_LLM_TIMEOUT_SECONDS
        )

    def __enter__(self) -> _CallRecord:
        if not llm_configured():
            raise LlmUnavailable("not_configured", "OPENAI_API_KEY is not set.")
        self.admission = self.breaker.admit(self.schema)
        if self.admission is Admission.REFUSED:
            self._write(outcome=LlmCall.Outcome.CIRCUIT_OPEN, error_code="circuit_open")
            raise LlmUnavailable("circuit_open", "Too many recent LLM failures for this tenant.")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        if error is None or isinstance(error, LlmUnavailable):
            code = error.reason if isinstance(error, LlmUnavailable) else ""
            outcome = LlmCall.Outcome.ERROR if error is not None else LlmCall.Outcome.OK
            self._write(outcome=outcome, error_code=code)
        else:
            self._write(outcome=LlmCall.Outcome.ERROR, error_code="internal_error")

    def succeeded(self, *, usage: LlmUsage, model: str, response_id: str) -> None:
        self.usage, self.model, self.response_id = usage, model, response_id

    def attempt(self, call: Callable[[], T], *, closes_circuit: bool = True) -> T:
        """Runs `call` until it succeeds, retrying transient failures with backoff. Every failed
        attempt counts towards the tenant's breaker; retrying stops once it opens.

        `closes_circuit=False` for a call that only prepares the answer (creating the OpenAI
        conversation): its success says nothing of the call that answers, so it leaves the
        failure count alone. Otherwise, in an outage of the answering endpoint alone, each new
        conversation's preparation reset the count and the circuit never opened."""
        import openai

        retries = 0
        while True:
            self.attempts += 1
            connection_return_to_pool()
            try:
                result = call()
            except openai.OpenAIError as error:
                failure = _classify(error)
                if failure is None:
                    # The client refused before or after the wire (bad arguments, a length
                    # cut-off…): no retry, and callers still see one exception type.
                    raise LlmUnavailable("client_error", _safe_message(error)) from error
                self._log_failure(failure, error)
                if not failure.transient:
                    # The request itself was refused; the service is up.
                    if closes_circuit:
                        self._close_circuit()
                    raise LlmUnavailable(failure.reason, _safe_message(error)) from error
                self.breaker.record_failure(self.schema)
                self.admission = Admission.COUNTED
                retry_after = failure.retry_after
                if (
                    retry_after is not None
                    and retry_after > settings.HUB_LLM_RETRY_AFTER_MAX_SECONDS
                ):
                    raise LlmUnavailable(
                        failure.reason, _safe_message(error), retry_after=retry_after
                    ) from error
                if retries >= settings.HUB_LLM_MAX_RETRIES or self.breaker.is_open(self.schema):
                    raise LlmUnavailable(
                        failure.reason, _safe_message(error), retry_after=retry_after
                    ) from error
                retries += 1
                time.sleep(_backoff_seconds(retries, retry_after=retry_after))
                continue
            if closes_circuit:
                self._close_circuit()
            return result

    def _close_circuit(self) -> None:
        """A success: the failures counted so far no longer run in a row."""
        if self.admission is not Admission.CLEAN:
            self.breaker.record_success(self.schema)
            self.admission = Admission.CLEAN

    def _log_failure(self, failure: _Failure, error: Exception) -> None:
        logger.warning(
            "llm attempt failed",
            extra={
                "reason": failure.reason,
                "status": getattr(error, "status_code", None),
                "attempt": self.attempts,
                "purpose": self.purpose,
                "schema": self.schema,
            },
        )

    def _write(self, *, outcome: str, error_code: str) -> None:
        if self.schema == "public":
            return  # LlmCall lives in tenant schemas; a platform-level call keeps no record.
        # In a caller's transaction a savepoint, so that a failed insert does not poison it.
        # Outside one (a reply's model call, change 43) the insert is a statement of its own: a
        # transaction would add a BEGIN and a COMMIT, two round trips on every model call
        # (docs/performance.md, change 61).
        guard = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
        try:
            with guard:
                call = LlmCall(
                    agent=self.agent,
                    conversation_id=self.conversation_id,
                    purpose=self.purpose,
                    api_mode=self.api_mode,
                    model=self.model
                    or (self.agent.model if self.agent else "")
                    or settings.HUB_LLM_MODEL,
                    input_tokens=self.usage.input_tokens,
                    output_tokens=self.usage.output_tokens,
                    total_tokens=self.usage.total_tokens,
                    latency_ms=int((time.monotonic() - self.started) * 1000),
                    attempts=self.attempts,
                    outcome=outcome,
                    error_code=error_code[:50],
                    response_id=self.response_id[:100],
                )
                insert(call)
        except DatabaseError:
            logger.exception("could not record an LLM call", extra={"schema": self.schema})


def _safe_message(error: Exception) -> str:
    """The error's class, status and code, never the server's message (it may echo input)."""
    status = getattr(error, "status_code", None)
    code = getattr(error, "code", None)
    return (
        type(error).__name__
        + (f" (HTTP {status})" if status else "")
        + (f" [{code}]" if isinstance(code, str) and code else "")
    )


def _without_rejected_temperature(call: Callable[..., T], *, temperature: float) -> Callable[[], T]:
    """Sends the agent's temperature; a model that refuses the parameter (reasoning models do)
    is asked again without it rather than failing every turn."""
    state = {"send": True}

    def attempt() -> T:
        import openai

        if not state["send"]:
            return call()
        try:
            return call(temperature=temperature)
        except openai.BadRequestError as error:
            if error.param != "temperature":
                raise
            state["send"] = False
            return call()

    return attempt


def _llm_conversation_ensure(conversation: Conversation, record: _CallRecord) -> str:
    """The OpenAI conversation of this hub conversation, created on first use."""
    if conversation.llm_conversation_id:
        return conversation.llm_conversation_id
    created = record.attempt(
        lambda: record.client.conversations.create(
            metadata={"hub_conversation_id": str(conversation.pk)}
        ),
        closes_circuit=False,
    )
    updated = Conversation.objects.filter(pk=conversation.pk, llm_conversation_id="").update(
        llm_conversation_id=created.id
    )
    if updated:
        conversation.llm_conversation_id = created.id
    else:
        # Another worker stored one first: use it, so the history stays in one place.
        conversation.llm_conversation_id = (
            Conversation.objects.filter(pk=conversation.pk)
            .values_list("llm_conversation_id", flat=True)
            .get()
        )
    return conversation.llm_conversation_id


# --- Building requests and reading answers -------------------------------------------------


def _agent_instructions(agent: Agent, extra: str) -> str:
    parts = [agent.instructions.strip()]
    if agent.persona.strip():
        parts.append(f"Persona and tone: {agent.persona.strip()}")
    if agent.language.strip():
        parts.append(
            f"Reply in {agent.language.strip()} unless the customer clearly writes in another "
            "language; then reply in theirs."
        )
    parts.append(extra.strip())
    return "\n\n".join(part for part in parts if part)


def _prompt_variables(variables: Any) -> dict[str, Any]:
    """Prompt variables are strings (or input objects such as `{"type": "input_text", …}`)."""
    if not isinstance(variables, dict):
        return {}
    return {
        str(name): value if isinstance(value, str | dict) else json.dumps(value)
        for name, value in variables.items()
    }


def _chat_messages(
    *, system: str, history: list[dict[str, str]], user: str
) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": system}] if system else []
    for turn in history:
        role, content = turn.get("role"), turn.get("content")
        if role not in _HISTORY_ROLES or not isinstance(content, str):
            raise ValueError(
                f"A history turn needs a role among {sorted(_HISTORY_ROLES)} and text."
            )
        messages.append({"role": role, "content": content})
    messages.append({"role": "user", "content": user})
    return messages


def _responses_create(client: openai.OpenAI, params: dict[str, Any]) -> _ResponsesAnswer:
    """`responses.create` through the SDK's own POST (its headers, timeouts and errors), with
    the body sent as built: `responses.create` first converts it through its typed parameters,
    0.2 ms of CPU a call (a fifth of the client's) for JSON that is plain already
    (docs/performance.md, change 61)."""
    return _ResponsesAnswer.read(client.post("/responses", body=params, cast_to=bytes))


@dataclass(frozen=True)
class _ResponsesAnswer:
    """What the hub reads of a Responses API answer, read from its JSON. The SDK's typed
    `Response` took 0.4 ms of CPU a call to build (pydantic over every field of the answer),
    a third of what the client costs per reply; the request, its errors and retries are still
    the SDK's."""

    id: str
    model: str
    usage: LlmUsage
    # As the SDK's `Response.output_text`: the text parts of the message items, joined.
    output_text: str

    @classmethod
    def read(cls, content: bytes) -> _ResponsesAnswer:
        try:
            body = json.loads(content)
        except ValueError as error:
            raise LlmInvalidOutput("The model's answer was not JSON.") from error
        if not isinstance(body, dict):
            raise LlmInvalidOutput("The model's answer was not a JSON object.")
        usage = body.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        texts = [
            part["text"]
            for item in _dicts(body.get("output"))
            if item.get("type") == "message"
            for part in _dicts(item.get("content"))
            if part.get("type") == "output_text" and isinstance(part.get("text"), str)
        ]
        try:
            counted = _usage(
                usage.get("input_tokens"), usage.get("output_tokens"), usage.get("total_tokens")
            )
        except (TypeError, ValueError) as error:
            raise LlmInvalidOutput("The model's answer counted its tokens wrongly.") from error
        return cls(
            id=str(body.get("id") or ""),
            model=str(body.get("model") or ""),
            usage=counted,
            output_text="".join(texts),
        )


def _dicts(items: Any) -> list[dict[str, Any]]:
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _chat_usage(completion: Any) -> LlmUsage:
    usage = getattr(completion, "usage", None)
    if usage is None:
        return NO_USAGE
    return _usage(
        getattr(usage, "prompt_tokens", 0),
        getattr(usage, "completion_tokens", 0),
        getattr(usage, "total_tokens", 0),
    )


def _usage(input_tokens: Any, output_tokens: Any, total_tokens: Any) -> LlmUsage:
    inputs, outputs = int(input_tokens or 0), int(output_tokens or 0)
    return LlmUsage(
        input_tokens=inputs,
        output_tokens=outputs,
        total_tokens=int(total_tokens or 0) or inputs + outputs,
    )


def _chat_text(completion: Any) -> str:
    choices = getattr(completion, "choices", None) or []
    if not choices:
        return ""
    message = choices[0].message
    if getattr(message, "refusal", None):
        raise LlmInvalidOutput("The model refused to answer.")
    return message.content or ""


def _parse_object(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    if not text.strip():
        raise LlmInvalidOutput("The model returned no JSON (empty answer or a refusal).")
    try:
        data = json.loads(text)
    except ValueError as error:
        raise LlmInvalidOutput("The model's answer is not valid JSON.") from error
    if not isinstance(data, dict):
        raise LlmInvalidOutput("The model's JSON answer is not an object.")
    missing = [key for key in schema.get("required", []) if key not in data]
    if missing:
        raise LlmInvalidOutput(f"The model's JSON answer lacks {', '.join(missing)}.")
    return data


__all__ = [
    "CircuitBreaker",
    "LlmIntent",
    "LlmInvalidOutput",
    "LlmReply",
    "LlmUnavailable",
    "LlmUsage",
    "intent_schema",
    "llm_circuit_reset",
    "llm_configured",
    "llm_embed",
    "llm_intent",
    "llm_reply",
    "llm_structured",
]
