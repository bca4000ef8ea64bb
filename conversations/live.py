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
from collections.abc import Coroutine
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
    loses only the live push: sockets replay from the database when they resume."""
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
    for group in groups:
        try:
            _run(layer.group_send(group, message))
        except Exception as error:
            logger.warning("live push failed", extra={"event": name, "error": type(error).__name__})


_loop_lock = threading.Lock()
_loop: tuple[int, asyncio.AbstractEventLoop] | None = None
PUSH_TIMEOUT_SECONDS = 5


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Runs a channel-layer call from sync code on one event loop per process, kept in a daemon
    thread. `async_to_sync` from a Celery task starts a new loop, thread and Redis connection
    for every call: that was a third of a worker's CPU (docs/performance.md). The loop is made
    again in a forked child (prefork workers), whose parent's thread did not survive the fork."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="hub-live-push", daemon=True).start()
            _loop = (os.getpid(), loop)
        loop = _loop[1]
    future = asyncio.run_coroutine_threadsafe(coroutine, loop)
    try:
        future.result(PUSH_TIMEOUT_SECONDS)
    except TimeoutError:
        future.cancel()
        raise
