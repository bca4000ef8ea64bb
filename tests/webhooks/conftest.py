"""A real HTTP receiver on 127.0.0.1 for outgoing webhooks, and a worker that retries fast."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests import support


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every request and answers from a script of `(status, headers)`, then 200, once
    `answering` is set (a test clears it to hold a request open)."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    answering: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.answering.set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/hook"

    def respond(self, *answers: int | tuple[int, dict[str, str]]) -> None:
        with self.lock:
            for answer in answers:
                self.script.append(answer if isinstance(answer, tuple) else (answer, {}))

    def record(self, received: Received) -> tuple[int, dict[str, str]]:
        with self.lock:
            self.requests.append(received)
            return self.script.pop(0) if self.script else (200, {})


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers = receiver.record(
                Received(self.command, self.path, dict(self.headers.items()), body)
            )
            receiver.answering.wait(30)
            answer = f"answer {status}".encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_POST = _handle
        do_GET = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fast_retry_worker(
    committed_db: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[support.Process]:
    """A real Celery worker whose first retry comes after about a second, not ten."""
    monkeypatch.setenv("HUB_WEBHOOKS_RETRY_BASE_SECONDS", "1")
    with support.celery_worker(tmp_path) as process:
        yield process
