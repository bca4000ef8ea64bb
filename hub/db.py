"""PostgreSQL as the hot paths use it: timestamps read by psycopg's C loader, and one-statement
inserts that a unique constraint may turn down.

Timestamps. Django registers a timestamptz loader on every connection that subclasses
psycopg's pure-Python one, which parses each value with a regular expression: about 5 µs a
value, and a list page of 50 conversations reads 306 of them (a tenth of the page's CPU).
psycopg's C loader makes the same aware datetimes in the session's time zone, which Django sets
to its own when it connects, in a fraction of that. C types cannot be subclassed from Python, so
this loader hands each value to one; it keeps Django's `timezone` attribute, which Django
compares on every cursor it opens.
"""

from __future__ import annotations

from datetime import tzinfo
from functools import cache, lru_cache
from typing import Any

import psycopg
from django.db import connection as default_connection
from django.db.models import Field, Model
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


def insert_unless_conflict(instance: Model) -> bool:
    """Inserts a new row in one statement, `ON CONFLICT DO NOTHING`: False, and nothing written,
    when one of the table's unique constraints already holds its values.

    Through the ORM an insert that may meet a unique constraint needs a savepoint around it
    (so that the IntegrityError leaves the caller's transaction usable) and is compiled every
    time: two more statements and a compile for every message and webhook stored
    (docs/performance.md, changes 26 and 27). The fields are prepared as `save()` prepares
    them (defaults, `auto_now_add`, encryption); no signals are sent, so it is only for models
    without receivers."""
    fields = _insert_fields(type(instance))
    values = [
        field.get_db_prep_save(field.pre_save(instance, True), default_connection)
        for field in fields
    ]
    with default_connection.cursor() as cursor:
        cursor.execute(_insert_sql(type(instance)), values)
        inserted = cursor.fetchone() is not None
    if inserted:
        instance._state.adding = False
        instance._state.db = default_connection.alias
    return inserted


@cache
def _insert_fields(model: type[Model]) -> list[Field[Any, Any]]:
    if model._meta.parents:
        raise TypeError(f"{model.__name__} inherits a table: its rows are two inserts")
    return [field for field in model._meta.local_concrete_fields if not field.generated]


@cache
def _insert_sql(model: type[Model]) -> str:
    quote = default_connection.ops.quote_name
    columns = ", ".join(quote(str(field.column)) for field in _insert_fields(model))
    placeholders = ", ".join(["%s"] * len(_insert_fields(model)))
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
        " ON CONFLICT DO NOTHING RETURNING 1"
    )
