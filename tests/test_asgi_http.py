"""hub/asgi_http.py: HTTP under ASGI from a fixed pool of threads, driven in-process through the
ASGI interface (the live-server tests drive it through uvicorn)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core import signals
from django.db import connection

from hub.asgi_http import PooledASGIHandler


def _scope(path: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def _call(
    handler: PooledASGIHandler, scope: dict, body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    communicator = ApplicationCommunicator(handler, scope)
    await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await communicator.receive_output(20)
    content = b""
    while True:
        message = await communicator.receive_output(20)
        content += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, content


class Threads:
    """Which thread sent request_started and request_finished, and whether the thread's database
    connection was still open once request_finished had run Django's own receivers."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.finished: list[tuple[int, bool]] = []

    def on_started(self, **kwargs: Any) -> None:
        self.started.append(threading.get_ident())

    def on_finished(self, **kwargs: Any) -> None:
        self.finished.append((threading.get_ident(), connection.connection is not None))


@pytest.fixture
def threads() -> Iterator[Threads]:
    recorded = Threads()
    signals.request_started.connect(recorded.on_started)
    signals.request_finished.connect(recorded.on_finished)
    yield recorded
    signals.request_started.disconnect(recorded.on_started)
    signals.request_finished.disconnect(recorded.on_finished)


def test_each_request_runs_in_one_pool_thread_and_hands_its_connection_back(
    committed_db, threads: Threads, settings: Any
) -> None:
    settings.HUB_WEB_THREADS = 3
    handler = PooledASGIHandler()
    info = committed_db["a"]
    scope = _scope("/api/v1/conversations/", headers={"Authorization": f"Bearer {info.api_key}"})

    async def burst() -> tuple[int, list[tuple[int, dict[str, str], bytes]]]:
        loop_thread = threading.get_ident()
        return loop_thread, await asyncio.gather(*(_call(handler, scope) for _ in range(24)))

    loop_thread, answers = asyncio.run(burst())
    handler.executor.shutdown()

    assert [status for status, _, _ in answers] == [200] * 24
    assert all("results" in json.loads(body) for _, _, body in answers)
    # Served by the pool, never on the event loop, and by no more threads than it has.
    assert len(threads.started) == len(threads.finished) == 24
    assert loop_thread not in threads.started
    assert 1 <= len(set(threads.started)) <= 3
    # Started and finished in the same thread, whose connection (read by the API) was closed by
    # then: nothing is left checked out between requests.
    assert sorted(threads.started) == sorted(thread for thread, _ in threads.finished)
    assert not any(still_open for _, still_open in threads.finished)


def test_bodies_headers_and_errors_pass_through_unchanged(committed_db, settings: Any) -> None:
    handler = PooledASGIHandler()
    info = committed_db["a"]

    async def exchange() -> list[tuple[int, dict[str, str], bytes]]:
        return [
            await _call(handler, _scope("/healthz")),
            # A webhook for a channel that does not exist: the body is read, the answer is the
            # contract's error shape.
            await _call(
                handler,
                _scope(
                    f"/webhooks/{info.slug}/telegram/no-such-token/",
                    method="POST",
                    headers={"Content-Type": "application/json"},
                ),
                b'{"update_id": 1}',
            ),
            await _call(
                handler,
                _scope("/api/v1/conversations/", headers={"Authorization": "Bearer hub_wrong"}),
            ),
        ]

    health, webhook, unauthorised = asyncio.run(exchange())
    handler.executor.shutdown()

    assert health[0] == 200
    assert webhook[0] == 404
    assert webhook[1]["content-type"].startswith("application/json")
    assert json.loads(webhook[2])["error"]["code"] == "not_found"
    assert unauthorised[0] == 401
    assert json.loads(unauthorised[2])["error"]["code"] == "authentication_failed"
    assert "x-request-id" in health[1]
