"""Fake providers: real HTTP servers on 127.0.0.1 that record requests and answer from a script.

The code under test reaches them through its normal client, with the provider's base URL
setting pointed here; only the internet is faked.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class FakeProvider:
    """Answers each request from the first scripted answer whose pattern matches the path
    (scripted answers are used once), else from the default for that pattern. A body may be a
    function of the request, for answers that differ per call (ids)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: list[tuple[re.Pattern[str], Answer]] = []
        self._defaults: list[tuple[re.Pattern[str], Answer]] = []
        self._lock = threading.Lock()
        self.url = ""

    def default(self, pattern: str, status: int, body: Any, **headers: str) -> None:
        self._defaults.append((re.compile(pattern), Answer(status, body, headers)))

    def then(self, pattern: str, status: int, body: Any, **headers: str) -> None:
        with self._lock:
            self._script.append((re.compile(pattern), Answer(status, body, headers)))

    def answer(self, recorded: Recorded) -> Answer:
        with self._lock:
            self.requests.append(recorded)
            for index, (pattern, answer) in enumerate(self._script):
                if pattern.search(recorded.path):
                    del self._script[index]
                    return answer
        for pattern, answer in self._defaults:
            if pattern.search(recorded.path):
                return answer
        return Answer(404, {"error": "no fake answer for this path"})

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


@contextmanager
def fake_provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            recorded = Recorded(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length),
                at=time.monotonic(),
            )
            answer = fake.answer(recorded)
            body = answer.body(recorded) if callable(answer.body) else answer.body
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.headers.pop("Content-Type", "application/json"))
            for name, value in answer.headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
