"""A per-process memo for reads on every request and message (tenant routing, API keys, webhook
channels, a tenant's intents and routing rules).

Every change to what it holds (a tenant, domain, API key, channel, intent or rule saved or
deleted: the receivers are connected in each app's `ready`) bumps one generation counter in
Redis once committed, and clears this process's memo at once. Each process reads the counter
at most once a second and drops everything when it moved, so a suspension, a revoked key or a
disabled channel takes effect everywhere within about a second. While the counter is watched,
an entry lives `HELD_SECONDS`: with a thousand tenants a process meets each of them only every
few seconds, and re-reading them every `HUB_TENANT_CACHE_SECONDS` (5 s) made the tenant, the
channel and the tenant row three queries on most webhooks (docs/performance.md, change 17). A
worker process of four meets each of a thousand tenants every few minutes, so an hour: held a
minute, every task re-read its tenant's rows (change 44). A bump that fails (Redis unreachable
from this process at that moment) is owed: tried again at every read of the counter, and once
more as the process exits (a management command), until it goes through. Only a process that
exits still owing it leaves the others to learn of its change within `HELD_SECONDS`. When Redis
cannot be read, entries live `HUB_TENANT_CACHE_SECONDS` only, as before. A full memo drops its
oldest entries, not all.

The counter can be bumped by hand (`redis-cli INCR hub:memo:generation`) after a change made
around the hub, in SQL.

`HUB_TENANT_CACHE_SECONDS` = 0 turns the memo off (the tests).
"""

from __future__ import annotations

import atexit
import itertools
import logging
from collections.abc import Callable, Hashable
from time import monotonic
from typing import Any, TypeVar

from django.conf import settings
from django.db import transaction
from redis.exceptions import RedisError

from hub.redis import get_redis

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ENTRIES = 10_000
# Dropped at once when the memo is full: the oldest loaded.
EVICTED_WHEN_FULL = MAX_ENTRIES // 10
GENERATION_KEY = "hub:memo:generation"
CHECK_SECONDS = 1.0
HELD_SECONDS = 3600.0

# key -> (loaded at on monotonic(), the generation then, value)
_memo: dict[Hashable, tuple[float, Any, object]] = {}
_watch: dict[str, Any] = {"checked_at": float("-inf"), "generation": None, "ok": False}
# Set while a committed change's bump has not reached Redis.
_bump_owed = {"owed": False}


def _watching(now: float) -> bool:
    """Whether the generation is being watched; reads it when a second has passed since the
    last read, clearing the memo when it moved."""
    if now - _watch["checked_at"] < CHECK_SECONDS:
        return bool(_watch["ok"])
    _watch["checked_at"] = now
    if _bump_owed["owed"]:
        _bump()
    try:
        generation = get_redis().get(GENERATION_KEY)
    except RedisError as error:
        if _watch["ok"]:
            logger.warning("memo generation not read", extra={"error": type(error).__name__})
        _watch["ok"] = False
        return False
    if generation != _watch["generation"] or not _watch["ok"]:
        # Changes made while the counter could not be read are not known either.
        _memo.clear()
        _watch["generation"] = generation
    _watch["ok"] = True
    return True


def memo_get(key: Hashable, load: Callable[[], T]) -> T:
    ttl = float(getattr(settings, "HUB_TENANT_CACHE_SECONDS", 5))
    if ttl <= 0:
        return load()
    now = monotonic()
    watching = _watching(now)
    # Read before loading: a load that began before a change and ends after another thread
    # saw its bump is stored under the old generation, so it is never served.
    generation = _watch["generation"]
    hit = _memo.get(key)
    if hit is not None:
        loaded_at, loaded_generation, value = hit
        if watching and loaded_generation == generation and now - loaded_at < HELD_SECONDS:
            return value  # type: ignore[return-value]
        if not watching and now - loaded_at < ttl:
            return value  # type: ignore[return-value]
    value = load()
    if len(_memo) >= MAX_ENTRIES:
        for oldest in list(itertools.islice(_memo, EVICTED_WHEN_FULL)):
            _memo.pop(oldest, None)
    # Popped first so that the dict's order stays the order of loading.
    _memo.pop(key, None)
    _memo[key] = (now, generation, value)
    return value


def memo_forget(key: Hashable) -> None:
    """Drops `key` in this process only (the others learn of a change from `memo_changed`)."""
    _memo.pop(key, None)


def _bump() -> None:
    _memo.clear()
    try:
        get_redis().incr(GENERATION_KEY)
    except RedisError as error:
        # Processes that cannot read the counter either hold entries for
        # HUB_TENANT_CACHE_SECONDS only; those that can are told when a later try goes through.
        _bump_owed["owed"] = True
        logger.warning("memo generation not bumped", extra={"error": type(error).__name__})
    else:
        _bump_owed["owed"] = False


@atexit.register
def _pay_owed_bump() -> None:
    if _bump_owed["owed"]:
        _bump()


def memo_changed(**_: Any) -> None:
    """Signal receiver for the models the memo holds: once the write commits, every process
    forgets what it remembers (within CHECK_SECONDS)."""
    transaction.on_commit(_bump)
