"""A fake OpenAI server on 127.0.0.1 (built on `tests.fakes`), reached through the real `openai`
client with `OPENAI_BASE_URL` pointed at `FakeOpenAI.base_url`.

It answers `POST /v1/conversations`, `POST /v1/responses` (plain text, or JSON when the request
asks for a `json_schema` format), `POST /v1/chat/completions` and `POST /v1/embeddings`
(deterministic bag-of-words vectors: texts sharing words are close), each with usage, and can be
scripted to fail: `fail()` (any status, optionally with `Retry-After`) and `slow()` (answers
after a delay, for timeouts). Scripted behaviour is used once per `times`, in order.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import FakeProvider, Recorded, fake_provider

CONVERSATIONS = r"^/v1/conversations$"
RESPONSES = r"^/v1/responses$"
CHAT_COMPLETIONS = r"^/v1/chat/completions$"
EMBEDDINGS = r"^/v1/embeddings$"


def fake_embedding(text: str, dimensions: int = 1536) -> list[float]:
    """A unit vector with one axis per word (hashed): the cosine similarity of two texts grows
    with the words they share, so retrieval over these vectors behaves like the real thing."""
    vector = [0.0] * dimensions
    for word in re.findall(r"\w{3,}", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % dimensions] += 1.0
    norm = math.sqrt(sum(value * value for value in vector))
    if not norm:
        vector[0], norm = 1.0, 1.0
    return [value / norm for value in vector]


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass
class FakeOpenAI:
    provider: FakeProvider
    # The text of a plain answer; None echoes the input ("You said: …").
    reply_text: str | None = None
    # The structured answer: a dict is sent as JSON, a string as is (to fake malformed JSON).
    structured: dict[str, Any] | str = field(
        default_factory=lambda: {"intent": "order_status", "confidence": 0.9, "entities": []}
    )
    input_tokens: int = 21
    output_tokens: int = 9
    model: str = ""

    @property
    def url(self) -> str:
        return self.provider.url

    @property
    def base_url(self) -> str:
        return f"{self.provider.url}/v1"

    @property
    def requests(self) -> list[Recorded]:
        return self.provider.requests

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.provider.requests if r.path == path]

    def fail(
        self,
        pattern: str,
        status: int,
        *,
        times: int = 1,
        retry_after: str | None = None,
        code: str = "server_error",
        param: str | None = None,
    ) -> None:
        """The next `times` requests matching `pattern` get an OpenAI-shaped error."""
        body = {
            "error": {
                "message": f"Scripted failure {status}.",
                "type": "rate_limit_error" if status == 429 else "server_error",
                "param": param,
                "code": code,
            }
        }
        headers = {"Retry_After": retry_after} if retry_after is not None else {}
        for _ in range(times):
            self.provider.then(pattern, status, body, **headers)

    def slow(self, pattern: str, seconds: float, *, times: int = 1) -> None:
        """The next `times` requests matching `pattern` are answered normally after `seconds`."""
        answer = self._answer_for(pattern)

        def late(request: Recorded) -> Any:
            time.sleep(seconds)
            return answer(request)

        for _ in range(times):
            self.provider.then(pattern, 200, late)

    def together(self, pattern: str, parties: int, *, timeout: float = 20) -> list[bool]:
        """The next `parties` requests matching `pattern` are each held until all of them have
        arrived, then answered normally. The list returned gets True per request answered that
        way, False per request that waited `timeout` in vain (they were not sent at once)."""
        answer = self._answer_for(pattern)
        barrier = threading.Barrier(parties)
        met: list[bool] = []

        def held(request: Recorded) -> Any:
            try:
                barrier.wait(timeout)
                met.append(True)
            except threading.BrokenBarrierError:
                met.append(False)
            return answer(request)

        for _ in range(parties):
            self.provider.then(pattern, 200, held)
        return met

    def hold(self, pattern: str, *, timeout: float = 30) -> tuple[threading.Event, threading.Event]:
        """The next request matching `pattern` is held until the test sets the second event
        (or `timeout` passes), then answered normally; the first is set once it has arrived."""
        answer = self._answer_for(pattern)
        arrived, release = threading.Event(), threading.Event()

        def held(request: Recorded) -> Any:
            arrived.set()
            release.wait(timeout)
            return answer(request)

        self.provider.then(pattern, 200, held)
        return arrived, release

    def _answer_for(self, pattern: str) -> Any:
        return {
            CONVERSATIONS: self._conversation,
            RESPONSES: self._response,
            CHAT_COMPLETIONS: self._chat_completion,
            EMBEDDINGS: self._embeddings,
        }[pattern]

    def _usage(self) -> tuple[int, int, int]:
        return self.input_tokens, self.output_tokens, self.input_tokens + self.output_tokens

    def _text(self, *, structured: bool, user_input: str) -> str:
        if structured:
            return (
                self.structured if isinstance(self.structured, str) else json.dumps(self.structured)
            )
        return self.reply_text if self.reply_text is not None else f"You said: {user_input}"

    def _conversation(self, request: Recorded) -> dict[str, Any]:
        body = request.json() if request.body else {}
        return {
            "id": _id("conv"),
            "object": "conversation",
            "created_at": int(time.time()),
            "metadata": body.get("metadata") or {},
        }

    def _response(self, request: Recorded) -> dict[str, Any]:
        body = request.json()
        structured = (body.get("text") or {}).get("format", {}).get("type") == "json_schema"
        user_input = body.get("input") if isinstance(body.get("input"), str) else ""
        inputs, outputs, total = self._usage()
        conversation = body.get("conversation")
        return {
            "id": _id("resp"),
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "model": self.model or body.get("model") or "gpt-fake-from-prompt",
            "conversation": {"id": conversation} if isinstance(conversation, str) else None,
            "output": [
                {
                    "type": "message",
                    "id": _id("msg"),
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {
                            "type": "output_text",
                            "text": self._text(structured=structured, user_input=user_input),
                            "annotations": [],
                        }
                    ],
                }
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": inputs,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": outputs,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": total,
            },
        }

    def _chat_completion(self, request: Recorded) -> dict[str, Any]:
        body = request.json()
        structured = (body.get("response_format") or {}).get("type") == "json_schema"
        messages = body.get("messages") or [{}]
        user_input = messages[-1].get("content", "")
        inputs, outputs, total = self._usage()
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model or body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": self._text(structured=structured, user_input=user_input),
                        "refusal": None,
                    },
                }
            ],
            "usage": {
                "prompt_tokens": inputs,
                "completion_tokens": outputs,
                "total_tokens": total,
            },
        }

    def _embeddings(self, request: Recorded) -> dict[str, Any]:
        body = request.json()
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        dimensions = int(body.get("dimensions") or 1536)
        tokens = sum(len(str(text).split()) for text in texts)
        return {
            "object": "list",
            "model": self.model or body.get("model"),
            "data": [
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": fake_embedding(text, dimensions),
                }
                for index, text in enumerate(texts)
            ],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


@contextmanager
def fake_openai() -> Iterator[FakeOpenAI]:
    with fake_provider() as provider:
        fake = FakeOpenAI(provider)
        provider.default(CONVERSATIONS, 200, fake._conversation)
        provider.default(RESPONSES, 200, fake._response)
        provider.default(CHAT_COMPLETIONS, 200, fake._chat_completion)
        provider.default(EMBEDDINGS, 200, fake._embeddings)
        yield fake
