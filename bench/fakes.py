"""The fake internet of a bench run: OpenAI and the Meta Graph API in one asyncio HTTP/1.1 server
on 127.0.0.1, run as its own process (`python -m bench.fakes --port-file PATH`).

The answers' shapes come from `tests.fake_openai` (the suite's fake, reused so the bench and the
tests agree on what OpenAI says); the server around them is asyncio with keep-alive, because the
suite's thread-per-request server costs more CPU than the hub itself at a few hundred calls a
second on a two-core machine.

Control endpoints (the bench's own, never reached by the hub):
- `GET /_bench/stats`: counters, and every Graph send as `[unix time, recipient, text]` after
  `?since=N` (the driver pairs them with its webhooks by the token in the text).
- `POST /_bench/mode`: `{"llm": "ok"|"fail"|"slow", "llm_delay": s, "graph": "ok"|"429",
  "retry_after": s, "latency": s}` — the faults the drills inject.
- `POST /_bench/reset`: counters and sends back to zero.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fake_openai import FakeOpenAI
from tests.fakes import FakeProvider, Recorded

MAX_BODY = 4 * 1024 * 1024


@dataclass
class State:
    openai: FakeOpenAI = field(default_factory=lambda: FakeOpenAI(FakeProvider()))
    counts: Counter[str] = field(default_factory=Counter)
    sends: list[tuple[float, str, str]] = field(default_factory=list)
    mode: dict[str, Any] = field(
        default_factory=lambda: {
            "llm": "ok",
            "llm_delay": 0.0,
            "graph": "ok",
            "retry_after": 1,
            "latency": 0.0,
        }
    )
    ids: itertools.count[int] = field(default_factory=itertools.count)


STATE = State()


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict]:
    return status, json.dumps(body).encode(), headers or {}


def _openai_error(status: int) -> tuple[int, bytes, dict]:
    return _json(
        status,
        {
            "error": {
                "message": "bench failure",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        },
    )


async def _llm(path: str, recorded: Recorded) -> tuple[int, bytes, dict]:
    STATE.counts[f"llm {path}"] += 1
    mode = STATE.mode
    if mode["llm"] == "fail":
        STATE.counts["llm failed"] += 1
        return _openai_error(500)
    if mode["llm"] == "slow":
        await asyncio.sleep(float(mode["llm_delay"]))
    if path == "/v1/conversations":
        return _json(200, STATE.openai._conversation(recorded))
    body = recorded.json()
    if path == "/v1/responses":
        response = STATE.openai._response(recorded)
        text_format = (body.get("text") or {}).get("format") or {}
        answer = _structured_answer(text_format.get("type"), text_format)
        if answer is not None:
            response["output"][0]["content"][0]["text"] = answer
        return _json(200, response)
    completion = STATE.openai._chat_completion(recorded)
    response_format = body.get("response_format") or {}
    answer = _structured_answer(
        response_format.get("type"), response_format.get("json_schema") or {}
    )
    if answer is not None:
        completion["choices"][0]["message"]["content"] = answer
    return _json(200, completion)


def _structured_answer(kind: Any, schema_format: dict[str, Any]) -> str | None:
    """Routing's intent call keeps the suite's intent answer; every other structured call
    (extraction, summaries, reminders, tasks) gets one its own schema accepts."""
    if kind != "json_schema" or schema_format.get("name") == "intent":
        return None
    return json.dumps(_instance_of(schema_format.get("schema") or {}))


def _instance_of(schema: dict[str, Any]) -> Any:
    """The plainest value a JSON schema, as the hub writes them, accepts: null wherever it may
    be, else the first choice, zero, false, an empty string or list, or an object of such."""
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "null" in kinds:
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    if "object" in kinds:
        return {name: _instance_of(sub) for name, sub in schema.get("properties", {}).items()}
    if "array" in kinds:
        return []
    if "boolean" in kinds:
        return False
    if "integer" in kinds or "number" in kinds:
        return schema.get("minimum", 0)
    return ""


def _graph_send(recorded: Recorded) -> tuple[int, bytes, dict]:
    mode = STATE.mode
    if mode["graph"] == "429":
        STATE.counts["graph throttled"] += 1
        return _json(
            429,
            {
                "error": {
                    "message": "(#130429) Rate limit hit",
                    "type": "OAuthException",
                    "code": 130429,
                }
            },
            {"Retry-After": str(mode["retry_after"])},
        )
    body = recorded.json()
    STATE.counts["graph sends"] += 1
    text = (body.get("text") or {}).get("body", "")
    STATE.sends.append((time.time(), str(body.get("to", "")), text))
    wamid = f"wamid.bench.{next(STATE.ids)}"
    return _json(
        200,
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body.get("to"), "wa_id": body.get("to")}],
            "messages": [{"id": wamid}],
        },
    )


async def _route(method: str, target: str, recorded: Recorded) -> tuple[int, bytes, dict]:
    url = urlsplit(target)
    path = url.path
    if path in ("/v1/conversations", "/v1/responses", "/v1/chat/completions"):
        return await _llm(path, recorded)
    if path.startswith("/graph/") and path.endswith("/messages") and method == "POST":
        if STATE.mode["latency"]:
            await asyncio.sleep(float(STATE.mode["latency"]))
        return _graph_send(recorded)
    if path == "/_bench/stats":
        since = int((parse_qs(url.query).get("since") or ["0"])[0])
        return _json(
            200,
            {
                "counts": dict(STATE.counts),
                "sends_total": len(STATE.sends),
                "sends": STATE.sends[since:],
                "mode": STATE.mode,
            },
        )
    if path == "/_bench/mode" and method == "POST":
        STATE.mode.update(recorded.json())
        return _json(200, STATE.mode)
    if path == "/_bench/reset" and method == "POST":
        STATE.counts.clear()
        STATE.sends.clear()
        return _json(200, {})
    return _json(404, {"error": "no fake answer for this path"})


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length") or 0)
            if length > MAX_BODY:
                return
            body = await reader.readexactly(length) if length else b""
            recorded = Recorded(method, target, headers, body, time.monotonic())
            status, payload, extra = await _route(method, target, recorded)
            out = [
                f"HTTP/1.1 {status} X",
                "Content-Type: application/json",
                f"Content-Length: {len(payload)}",
            ]
            out += [f"{k}: {v}" for k, v in extra.items()]
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + payload)
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                return
    except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.LimitOverrunError):
        return
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _main(port_file: Path) -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    port_file.write_text(str(port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fakes")
    parser.add_argument("--port-file", type=Path, required=True)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings.test")
    asyncio.run(_main(options.port_file))


if __name__ == "__main__":
    main()
