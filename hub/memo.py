"""A short per-process memo for reads on every request (tenant routing, webhook channels).

Entries live `HUB_TENANT_CACHE_SECONDS` (5 s): a suspended tenant or a disabled channel takes
effect within that long in every process. 0 turns it off (the tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import TypeVar

from django.conf import settings

T = TypeVar("T")

MAX_ENTRIES = 10_000
_memo: dict[Hashable, tuple[float, object]] = {}


def memo_get(key: Hashable, load: Callable[[], T]) -> T:
    ttl = float(getattr(settings, "HUB_TENANT_CACHE_SECONDS", 5))
    now = time.monotonic()
    hit = _memo.get(key)
    if ttl > 0 and hit and hit[0] > now:
        return hit[1]  # type: ignore[return-value]
    value = load()
    if ttl > 0:
        if len(_memo) > MAX_ENTRIES:
            _memo.clear()
        _memo[key] = (now + ttl, value)
    return value


def memo_forget(key: Hashable) -> None:
    """Drops `key` in this process (a change made here shows at once; elsewhere within the TTL)."""
    _memo.pop(key, None)
