"""The bridge from domain events to live sockets (Channels groups), for the web chat and the
operator inbox. Group names carry the schema, so one tenant's socket never joins another's.

- `conversation_group(schema, id)`: every event about one conversation (messages, its state).
- `inbox_group(schema)`: every event of the tenant, for operators' inbox lists.
Each group message is `{"type": "hub.event", "event": <name>, "payload": <the API shape>}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from channels_redis.utils import create_pool, decode_hosts
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from redis import asyncio as aioredis

logger = logging.getLogger(__name__)


def conversation_group(schema: str, conversation_id: str) -> str:
    return f"{schema}.conversation.{conversation_id}"


def inbox_group(schema: str) -> str:
    return f"{schema}.inbox"


def _conversation_of(name: str, payload: dict[str, Any]) -> str | None:
    if name.startswith("message."):
        return str(payload.get("conversation") or "") or None
    if name.startswith("conversation."):
        return str(payload.get("id") or "") or None
    if name.startswith("notification."):
        return str(payload.get("conversation") or "") or None
    return None


def on_event(schema: str, name: str, payload: dict[str, Any]) -> None:
    """Sends the event to its conversation's group and the tenant's inbox group. A dead Redis
    loses only the live push: sockets replay from the database when they resume. Never waits
    for Redis: the push is queued for the process's sender (`_enqueue`)."""
    layer = get_channel_layer()
    if layer is None:
        return
    # The API's shapes hold UUIDs and datetimes, which the Redis layer (msgpack) cannot carry:
    # sockets get them as their JSON text, as API clients do.
    payload = json.loads(json.dumps(payload, cls=DjangoJSONEncoder))
    message = {"type": "hub.event", "event": name, "payload": payload}
    groups = [inbox_group(schema)]
    conversation_id = _conversation_of(name, payload)
    if conversation_id:
        groups.append(conversation_group(schema, conversation_id))
    _enqueue(_Push(layer=layer, groups=groups, message=message))


@dataclass(frozen=True)
class _Push:
    layer: Any
    groups: list[str]
    message: dict[str, Any]


@dataclass(eq=False)
class _Sender:
    """The process's sender: one event loop in a daemon thread, sending pushes in order."""

    pid: int
    loop: asyncio.AbstractEventLoop
    pending: deque[_Push] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # A wake-up is on its way to the loop: pushes queued meanwhile ride on it.
    woken: bool = False


_sender_lock = threading.Lock()
_sender: _Sender | None = None
PUSH_TIMEOUT_SECONDS = 5
# Pushes waiting while the layer is slow or down; past this they are dropped (and logged).
QUEUE_LIMIT = 10_000


def _enqueue(push: _Push) -> None:
    """Hands a push to the process's sender. `async_to_sync` from a Celery task starts a new
    loop, thread and Redis connection for every call (a third of a worker's CPU), and waiting
    for each send costs the caller a round trip to that thread and to Redis
    (docs/performance.md). The pushes of one commit come together: the loop is woken once for
    them (a wake-up is a write to its pipe) and sends them in one round trip (`_send`). The
    loop is made again in a forked child (prefork workers), whose parent's thread did not
    survive."""
    global _sender
    with _sender_lock:
        if _sender is None or _sender.pid != os.getpid():
            _sender = _Sender(pid=os.getpid(), loop=asyncio.new_event_loop())
            threading.Thread(
                target=_sender.loop.run_forever, name="hub-live-push", daemon=True
            ).start()
            asyncio.run_coroutine_threadsafe(_send_forever(_sender), _sender.loop)
        sender = _sender
        full = len(sender.pending) >= QUEUE_LIMIT
        wake = not (full or sender.woken)
        if not full:
            sender.pending.append(push)
            sender.woken = True
    if full:
        logger.warning(
            "live push dropped: the channel layer is behind",
            extra={"event": push.message["event"]},
        )
    elif wake:
        sender.loop.call_soon_threadsafe(sender.wake.set)


async def _send_forever(sender: _Sender) -> None:
    layer: Any = None
    publisher: _Publisher | None = None
    while True:
        await sender.wake.wait()
        sender.wake.clear()
        with _sender_lock:
            pushes = list(sender.pending)
            sender.pending.clear()
            sender.woken = False
        for pushes_layer, batch in _by_layer(pushes):
            if pushes_layer is not layer:
                if publisher is not None:
                    await publisher.close()
                layer, publisher = pushes_layer, _Publisher.of(pushes_layer)
            await _send(layer, publisher, batch)


def _by_layer(pushes: list[_Push]) -> list[tuple[Any, list[_Push]]]:
    """Consecutive pushes on the same layer, in order (the layer changes only in tests)."""
    runs: list[tuple[Any, list[_Push]]] = []
    for push in pushes:
        if runs and runs[-1][0] is push.layer:
            runs[-1][1].append(push)
        else:
            runs.append((push.layer, [push]))
    return runs


async def _send(layer: Any, publisher: _Publisher | None, pushes: list[_Push]) -> None:
    """Sends the pushes' group messages in order: in one round trip on the pub/sub layer,
    else one `group_send` each. A failure loses these pushes only (sockets replay on resume)."""
    try:
        async with asyncio.timeout(PUSH_TIMEOUT_SECONDS):
            if publisher is not None:
                await publisher.publish(pushes)
                return
            for push in pushes:
                for group in push.groups:
                    await layer.group_send(group, push.message)
    except Exception as error:
        logger.warning(
            "live push failed",
            extra={"events": len(pushes), "error": type(error).__name__},
        )


class _Publisher:
    """PUBLISHes group messages as channels_redis' pub/sub layer does (to its group's channel,
    serialised by the layer itself), many in one pipeline; the layer would send each in a
    round trip of its own. The subscribers are the layer's own (webchat/fanout.py and the inbox
    consumers): only the publishing is done here."""

    def __init__(self, layer: RedisPubSubChannelLayer, host: dict[str, Any], prefix: str) -> None:
        self.layer = layer
        self.redis = aioredis.Redis(connection_pool=create_pool(host))
        self.prefix = prefix

    @classmethod
    def of(cls, layer: Any) -> _Publisher | None:
        """The publisher for `layer` (the current settings' default layer): None for another
        kind of layer, or one sharded over several Redis servers."""
        config = settings.CHANNEL_LAYERS["default"].get("CONFIG", {})
        hosts = decode_hosts(config.get("hosts"))
        if not isinstance(layer, RedisPubSubChannelLayer) or len(hosts) != 1:
            return None
        return cls(layer, hosts[0], config.get("prefix", "asgi"))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    async def publish(self, pushes: list[_Push]) -> None:
        async with self.redis.pipeline(transaction=False) as pipeline:
            for push in pushes:
                data = self.layer.serialize(push.message)
                for group in push.groups:
                    pipeline.publish(f"{self.prefix}__group__{group}", data)
            await pipeline.execute()
