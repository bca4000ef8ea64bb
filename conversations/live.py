"""The bridge from domain events to live sockets (Channels groups), for the web chat and the
operator inbox. Group names carry the schema, so one tenant's socket never joins another's.

- `conversation_group(schema, id)`: every event about one conversation (messages, its state).
- `inbox_group(schema)`: every event of the tenant, for operators' inbox lists.
Each group message is `{"type": "hub.event", "event": <name>, "payload": <the API shape>}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder

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


_sender_lock = threading.Lock()
_sender: tuple[int, asyncio.AbstractEventLoop, asyncio.Queue[_Push]] | None = None
PUSH_TIMEOUT_SECONDS = 5
# Pushes waiting while the layer is slow or down; past this they are dropped (and logged).
QUEUE_LIMIT = 10_000


def _enqueue(push: _Push) -> None:
    """Hands a push to the process's sender: one event loop in a daemon thread, sending in
    order, one push at a time. `async_to_sync` from a Celery task starts a new loop, thread and
    Redis connection for every call (a third of a worker's CPU), and waiting for each send
    costs the caller a round trip to that thread and to Redis (docs/performance.md). The loop
    is made again in a forked child (prefork workers), whose parent's thread did not survive."""
    global _sender
    with _sender_lock:
        if _sender is None or _sender[0] != os.getpid():
            loop = asyncio.new_event_loop()
            pushes: asyncio.Queue[_Push] = asyncio.Queue(QUEUE_LIMIT)
            threading.Thread(target=loop.run_forever, name="hub-live-push", daemon=True).start()
            asyncio.run_coroutine_threadsafe(_send_forever(pushes), loop)
            _sender = (os.getpid(), loop, pushes)
        loop, pushes = _sender[1], _sender[2]
    loop.call_soon_threadsafe(_put, pushes, push)


def _put(pushes: asyncio.Queue[_Push], push: _Push) -> None:
    try:
        pushes.put_nowait(push)
    except asyncio.QueueFull:
        logger.warning(
            "live push dropped: the channel layer is behind",
            extra={"event": push.message["event"]},
        )


async def _send_forever(pushes: asyncio.Queue[_Push]) -> None:
    while True:
        push = await pushes.get()
        for group in push.groups:
            try:
                await asyncio.wait_for(
                    push.layer.group_send(group, push.message), PUSH_TIMEOUT_SECONDS
                )
            except Exception as error:
                logger.warning(
                    "live push failed",
                    extra={"event": push.message["event"], "error": type(error).__name__},
                )
