"""kombu's Redis transport with one Redis client per channel.

kombu builds a new `redis.Redis` for every blocking command a channel sends, a publish
included, and each constructor copies redis-py's table of some 170 response callbacks: about a
sixth of publishing a task, on every webhook (docs/performance.md, change 19). A client is
only a handle on the channel's connection pool and is safe to share, so each channel keeps one
for as long as its pool lives. `redis://` and `rediss://` broker URLs resolve to this transport
once hub.celery is imported.

`broker_backlogged` tells the sweeps whether tasks are waiting in the queue.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kombu.exceptions import ChannelError, OperationalError
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from redis.exceptions import RedisError

from hub.shards import shard_queues

logger = logging.getLogger(__name__)


class Channel(kombu_redis.Channel):
    _hub_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool
        client = self._hub_client
        if client is None or client.connection_pool is not pool:
            client = self._hub_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel


def broker_transport_install() -> None:
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"


# How long a process trusts what it read of the queue: the sweeps that ask run once a minute
# per tenant, a thousand tenants at a time.
BACKLOG_CHECK_SECONDS = 5.0
_backlog: dict[str, float | bool] = {"read_at": float("-inf"), "backlogged": False}


def _queue_length(channel: Any, name: str) -> int:
    try:
        return int(channel.queue_declare(queue=name, passive=True)[1])
    except ChannelError:  # no such queue yet: nothing was ever queued, or all was taken
        return 0


def _inbound_queues_length() -> int:
    from django.conf import settings

    from hub.celery import app

    with app.pool.acquire(block=True) as connection:
        channel = connection.default_channel
        return sum(
            _queue_length(channel, name) for name in shard_queues(settings.HUB_TENANT_SHARDS)
        )


def broker_backlogged() -> bool:
    """Whether tasks are waiting in the default queue or another tenant shard's (hub/shards.py),
    read at most every BACKLOG_CHECK_SECONDS per process. False when the broker cannot be read:
    then nothing can be queued either."""
    now = time.monotonic()
    if now - float(_backlog["read_at"]) < BACKLOG_CHECK_SECONDS:
        return bool(_backlog["backlogged"])
    try:
        waiting = _inbound_queues_length()
    except (RedisError, OperationalError, OSError) as error:
        logger.warning("broker queue not read", extra={"error": type(error).__name__})
        waiting = 0
    _backlog.update(read_at=now, backlogged=waiting > 0)
    return waiting > 0
