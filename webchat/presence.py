"""Visitor presence in Redis, shared with the operator inbox.

- `hub:presence:<schema>:visitor:<conversation id>`: exists while the visitor is online; its TTL
  (30 s) is refreshed by every `ping` (every 15 s), so a visitor that stops pinging goes
  offline by itself, even when the process holding its socket died.
- `…:sockets`: the set of the visitor's open sockets (tabs), same TTL, so closing one of two
  tabs does not take the visitor offline.
- `hub:presence:<schema>:visitors`: the conversations whose visitor the team was told is
  online. A socket that dies with its process never says "offline"; the `presence.sweep` job
  finds those whose key has expired and tells the team (inbox/presence.py).
- `hub:presence:<schema>:operator:<operator id>`: kept by the inbox; read here to tell a
  visitor whether the operator answering is online.

Presence is best effort: with Redis down a socket keeps working and only presence is lost.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def presence_seconds() -> float:
    return float(getattr(settings, "HUB_WEBCHAT_PRESENCE_SECONDS", 30))


def _redis() -> aioredis.Redis:
    # One pool per event loop: an asyncio connection cannot move between loops.
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2
        )
        _clients[loop] = client
    return client


def visitor_key(schema: str, conversation_id: str) -> str:
    return f"hub:presence:{schema}:visitor:{conversation_id}"


def operator_key(schema: str, operator_id: str) -> str:
    return f"hub:presence:{schema}:operator:{operator_id}"


def announced_visitors_key(schema: str) -> str:
    return f"hub:presence:{schema}:visitors"


async def visitor_seen(*, schema: str, conversation_id: str, socket: str) -> bool:
    """Marks the visitor online for another TTL (on connect and on each ping). Returns True
    when it was offline before, i.e. when the team should hear it came online."""
    key = visitor_key(schema, conversation_id)
    ttl = max(1, int(presence_seconds() * 1000))
    try:
        async with _redis().pipeline(transaction=True) as pipe:
            pipe.set(key, "online", px=ttl, get=True)
            pipe.sadd(f"{key}:sockets", socket)
            pipe.pexpire(f"{key}:sockets", ttl)
            pipe.sadd(announced_visitors_key(schema), conversation_id)
            previous, _, _, _ = await pipe.execute()
    except (RedisError, OSError) as error:
        logger.warning("presence unavailable", extra={"error": type(error).__name__})
        return False
    return previous is None


async def visitor_left(*, schema: str, conversation_id: str, socket: str) -> bool:
    """This socket is gone (closed, or silent past the TTL). Returns True when it was the
    visitor's last one, which takes the visitor offline now rather than at the TTL."""
    key = visitor_key(schema, conversation_id)
    try:
        async with _redis().pipeline(transaction=True) as pipe:
            pipe.srem(f"{key}:sockets", socket)
            pipe.scard(f"{key}:sockets")
            _, remaining = await pipe.execute()
            if remaining:
                return False
            async with _redis().pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.srem(announced_visitors_key(schema), conversation_id)
                await pipe.execute()
            return True
    except (RedisError, OSError) as error:
        logger.warning("presence unavailable", extra={"error": type(error).__name__})
        return False


async def operator_status(*, schema: str, operator_id: str) -> str:
    """`online` or `away` (what the operator chose, while the inbox is open), else `offline`."""
    try:
        value = await _redis().get(operator_key(schema, operator_id))
    except (RedisError, OSError):
        return "offline"
    if value is None:
        return "offline"
    return "away" if value == b"away" else "online"
