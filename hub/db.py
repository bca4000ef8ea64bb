"""How PostgreSQL's timestamps become Python datetimes.

Django registers a timestamptz loader on every connection that subclasses psycopg's pure-Python
one, which parses each value with a regular expression: about 5 µs a value, and a list page of
50 conversations reads 306 of them (a tenth of the page's CPU). psycopg's C loader makes the
same aware datetimes in the session's time zone, which Django sets to its own when it connects,
in a fraction of that. C types cannot be subclassed from Python, so this loader hands each value
to one; it keeps Django's `timezone` attribute, which Django compares on every cursor it opens.
"""

from __future__ import annotations

from datetime import tzinfo
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import abc
from psycopg.abc import AdaptContext, Buffer
from psycopg.adapt import Loader
from psycopg.pq import Format
from psycopg.types.datetime import TimestamptzLoader as PythonTimestamptzLoader

_TIMESTAMPTZ_OID = psycopg.adapters.types["timestamptz"].oid
# psycopg's own loader for text-format timestamptz: the C one where psycopg[binary] is in.
_FASTEST: type[abc.Loader] = (
    psycopg.adapters.get_loader(_TIMESTAMPTZ_OID, Format.TEXT) or PythonTimestamptzLoader
)


class TimestamptzLoader(Loader):
    timezone: tzinfo | None = None

    def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        self._load = _FASTEST(oid, context).load

    def load(self, data: Buffer) -> Any:
        return self._load(data)


@lru_cache
def _loader_for(zone: tzinfo | None) -> type[TimestamptzLoader]:
    return type("ZonedTimestamptzLoader", (TimestamptzLoader,), {"timezone": zone})


def timestamptz_loader_install(*, sender: Any = None, connection: Any, **_kwargs: Any) -> None:
    """`connection_created` receiver: replaces Django's loader on the new connection."""
    if connection.vendor != "postgresql":
        return
    connection.connection.adapters.register_loader("timestamptz", _loader_for(connection.timezone))
