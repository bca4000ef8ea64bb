"""kombu's Redis transport with one Redis client per channel.

kombu builds a new `redis.Redis` for every blocking command a channel sends, a publish
included, and each constructor copies redis-py's table of some 170 response callbacks: about a
sixth of publishing a task, on every webhook (docs/performance.md, change 19). A client is
only a handle on the channel's connection pool and is safe to share, so each channel keeps one
for as long as its pool lives. `redis://` and `rediss://` broker URLs resolve to this transport
once hub.celery is imported.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis


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
