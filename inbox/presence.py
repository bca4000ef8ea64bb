"""Who is connected right now, kept in Redis with TTLs (the web chat writes the visitors' keys,
the inbox the operators'). A key outlives its socket by at most its TTL: sockets refresh it on
every ping (15 s), so a missing key means offline.

Presence is a live hint, never a source of truth: with Redis down everyone reads as offline and
nothing else breaks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from redis.exceptions import RedisError

from hub.redis import get_redis

logger = logging.getLogger(__name__)

TTL_SECONDS = 30


def visitor_key(schema: str, conversation_id: str) -> str:
    return f"hub:presence:{schema}:visitor:{conversation_id}"


def operator_key(schema: str, operator_id: str) -> str:
    return f"hub:presence:{schema}:operator:{operator_id}"


def operator_presence_touch(*, schema: str, operator_id: str, availability: str) -> None:
    """The operator's socket is alive, with this availability (online or away)."""
    try:
        get_redis().set(operator_key(schema, operator_id), availability, ex=TTL_SECONDS)
    except RedisError as error:
        logger.warning("presence not stored", extra={"error": type(error).__name__})


def operator_presence_get(*, schema: str, operator_ids: Iterable[str]) -> dict[str, str]:
    """Each connected operator's availability; an operator without a live socket is absent."""
    ids = list(operator_ids)
    if not ids:
        return {}
    try:
        values = get_redis().mget([operator_key(schema, operator_id) for operator_id in ids])
    except RedisError as error:
        logger.warning("presence not read", extra={"error": type(error).__name__})
        return {}
    return {
        operator_id: value.decode() if isinstance(value, bytes) else str(value)
        for operator_id, value in zip(ids, values, strict=True)
        if value is not None
    }


def visitor_online(*, schema: str, conversation_id: str) -> bool:
    try:
        return bool(get_redis().exists(visitor_key(schema, conversation_id)))
    except RedisError as error:
        logger.warning("presence not read", extra={"error": type(error).__name__})
        return False
