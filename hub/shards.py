"""Tenant shards: a tenant's inbound work (the default queue's tasks: inbound events, answers,
media, extraction) goes to one of `HUB_TENANT_SHARDS` queues, chosen from its schema's name, and
a worker given `HUB_WORKER_SHARD` takes from that shard's queue before the other shards'.

Why: a worker process's first task in a tenant costs its PostgreSQL backend about 7 ms of CPU
and 0.7 MB of catalog caches, and the process itself its caches of the tenant
(docs/performance.md, changes 35 and 56). When every worker process takes every tenant's
messages, each tenant pays that in every process, after every deploy. With shards each tenant
meets mostly the workers of its own shard.

A worker still takes from the other shards' queues whenever its own has nothing waiting, so one
tenant's burst keeps every worker busy; and it takes from them first on every
`STEAL_FIRST_EVERY`-th fetch, so a shard whose worker is down, or that has none, is still served
while every queue has a backlog. A worker given no shard takes from all of them in turn.
"""

from __future__ import annotations

import zlib
from typing import Any

from kombu.utils.scheduling import round_robin_cycle

DEFAULT_QUEUE = "celery"
STEAL_FIRST_EVERY = 32


def shard_queue(index: int) -> str:
    """Shard 0's queue is the default queue: one shard is the hub without shards, and raising
    the count strands nothing already queued."""
    return DEFAULT_QUEUE if index == 0 else f"{DEFAULT_QUEUE}.{index}"


def shard_queues(count: int) -> list[str]:
    return [shard_queue(index) for index in range(count)]


def shard_of_schema(*, schema_name: str, count: int) -> int:
    # crc32 and not hash(): the web and every worker must put a schema in the same shard, and
    # Python salts str hashes per process.
    return zlib.crc32(schema_name.encode()) % count


class TenantShardRouter:
    """A Celery router for the tasks no route names: the shard queue of the schema they are
    published from, which tenant-schemas-celery has put in their headers."""

    def __init__(self, *, count: int) -> None:
        self.count = count

    def __call__(
        self, name: str, args: Any, kwargs: Any, options: dict[str, Any], **_rest: Any
    ) -> dict[str, str] | None:
        if self.count == 1:
            return None
        schema_name = (options.get("headers") or {}).get("_schema_name")
        if not schema_name:
            return None
        return {"queue": shard_queue(shard_of_schema(schema_name=schema_name, count=self.count))}


class OwnShardFirst(round_robin_cycle):
    """kombu's order of a worker's queues for each fetch (`queue_order_strategy`): Redis's BRPOP
    takes from the first queue with a task in it. The queues every worker shares and its own
    shard's come first, in turn as kombu's round robin has them; the other shards' after them,
    and before them on every STEAL_FIRST_EVERY-th fetch."""

    def __init__(self, *, own: str, shards: list[str]) -> None:
        super().__init__()
        self.others = frozenset(shards) - {own}
        self.fetches = 0

    def consume(self, n: int) -> list[str]:
        queues: list[str] = super().consume(n)
        mine = [queue for queue in queues if queue not in self.others]
        others = [queue for queue in queues if queue in self.others]
        self.fetches += 1
        return others + mine if self.fetches % STEAL_FIRST_EVERY == 0 else mine + others
