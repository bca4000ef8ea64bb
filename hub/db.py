"""PostgreSQL as the hot paths use it: timestamps read by psycopg's C loader, and statements the
ORM would build and compile on every call built once instead (inserts, one of which a unique
constraint may turn down; updates of named fields; upserts; `PreparedQuery` for reads), and
the advisory locks' keys, and a thread's pooled connection given back while it waits on a
model.

Timestamps. Django registers a timestamptz loader on every connection that subclasses
psycopg's pure-Python one, which parses each value with a regular expression: about 5 µs a
value, and a list page of 50 conversations reads 306 of them (a tenth of the page's CPU).
psycopg's C loader makes the same aware datetimes in the session's time zone, which Django sets
to its own when it connects, in a fraction of that. C types cannot be subclassed from Python, so
this loader hands each value to one; it keeps Django's `timezone` attribute, which Django
compares on every cursor it opens.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache, lru_cache
from typing import Any

import psycopg
from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db import connection as default_connection
from django.db.models import Field, Model, QuerySet
from django.db.models.base import ModelState
from django.db.models.query import (
    FlatValuesListIterable,
    ModelIterable,
    ValuesListIterable,
    get_related_populators,
)
from django.db.models.signals import post_init, post_save, pre_init, pre_save
from django.db.models.sql.compiler import SQLCompiler
from django.db.transaction import TransactionManagementError
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
    them (defaults, `auto_now_add`, encryption); no signals are sent, so models with save
    receivers are refused."""
    return _insert(instance, _insert_sql(type(instance), on_conflict="DO NOTHING"))


def insert(instance: Model) -> None:
    """`instance.save()` of a new row (an IntegrityError as the ORM raises it), in a statement
    built once per model rather than compiled on every call (change 34): prepared as
    `insert_unless_conflict` prepares it, its database-made key (an auto id) read back."""
    _insert(instance, _insert_sql(type(instance), on_conflict=""))


def upsert(instance: Model, *, unique_fields: list[str], update_fields: list[str]) -> None:
    """`bulk_create([instance], update_conflicts=True, ...)`: a new row, or `update_fields` of
    the row holding its `unique_fields` overwritten with its values; one statement built once
    per model and fields (change 34), prepared as `insert` prepares it."""
    model = type(instance)
    columns = _columns(model, tuple(unique_fields))
    updated = _columns(model, tuple(update_fields)).split(", ")
    assignments = ", ".join(f"{column} = EXCLUDED.{column}" for column in updated)
    clause = f"({columns}) DO UPDATE SET {assignments}"
    _insert(instance, _insert_sql(model, on_conflict=clause))


def _concrete(model: type[Model], names: tuple[str, ...]) -> list[Field[Any, Any]]:
    named = [model._meta.get_field(name) for name in names]
    fields = [f for f in named if isinstance(f, Field) and f.concrete]
    if len(fields) != len(names):
        raise TypeError(f"not columns of {model.__name__}: {names}")
    return fields


@cache
def _columns(model: type[Model], names: tuple[str, ...]) -> str:
    quote = default_connection.ops.quote_name
    return ", ".join(quote(str(field.column)) for field in _concrete(model, names))


def save_fields(instance: Model, fields: list[str]) -> None:
    """`instance.save(update_fields=fields)` of a stored row, in a statement built once per model
    and fields (change 34): each field prepared as `save()` prepares it (`auto_now`,
    encryption), no signals (models with save receivers are refused). Raises DatabaseError, as
    Django does, when no row has the instance's key."""
    model = type(instance)
    _refuse_receivers(model)
    sql, targets = update_statement(model, tuple(fields))
    values = [
        field.get_db_prep_save(field.pre_save(instance, False), default_connection)
        for field in targets
    ]
    with default_connection.cursor() as cursor:
        key = model._meta.pk.get_db_prep_value(instance.pk, default_connection)
        cursor.execute(sql, [*values, key])
        if cursor.rowcount != 1:
            raise DatabaseError("Save with update_fields did not affect any rows.")


def _insert(instance: Model, sql: str) -> bool:
    model = type(instance)
    _refuse_receivers(model)
    values = [
        field.get_db_prep_save(field.pre_save(instance, True), default_connection)
        for field in _insert_fields(model)
    ]
    with default_connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    for field, value in zip(model._meta.db_returning_fields, row, strict=False):
        setattr(instance, field.attname, value)
    instance._state.adding = False
    instance._state.db = default_connection.alias
    return True


def _refuse_receivers(model: type[Model]) -> None:
    if pre_save.has_listeners(model) or post_save.has_listeners(model):
        raise TypeError(f"{model.__name__} has save receivers: save it through the ORM")


@cache
def _insert_fields(model: type[Model]) -> list[Field[Any, Any]]:
    if model._meta.parents:
        raise TypeError(f"{model.__name__} inherits a table: its rows are two inserts")
    made_by_database = set(model._meta.db_returning_fields)
    return [
        field
        for field in model._meta.local_concrete_fields
        if not field.generated and field not in made_by_database
    ]


@cache
def _insert_sql(model: type[Model], *, on_conflict: str) -> str:
    quote = default_connection.ops.quote_name
    columns = ", ".join(quote(str(field.column)) for field in _insert_fields(model))
    placeholders = ", ".join(["%s"] * len(_insert_fields(model)))
    returning = ", ".join(quote(str(f.column)) for f in model._meta.db_returning_fields) or "1"
    conflict = f" ON CONFLICT {on_conflict}" if on_conflict else ""
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608
        f"{conflict} RETURNING {returning}"
    )


@cache
def update_statement(
    model: type[Model], fields: tuple[str, ...], *, condition: str = ""
) -> tuple[str, list[Field[Any, Any]]]:
    """`UPDATE` of `fields` of the row whose key is the first parameter after their values, and
    `condition` (SQL, its own parameters last) holds: the statement and the fields in order.
    Built once per model, fields and condition."""
    quote = default_connection.ops.quote_name
    targets = _concrete(model, fields)
    if any(field.primary_key for field in targets):
        raise TypeError(f"a row's key is not updated here: {fields}")
    assignments = ", ".join(f"{quote(str(field.column))} = %s" for field in targets)
    table, key = quote(model._meta.db_table), quote(str(model._meta.pk.column))
    extra = f" AND {condition}" if condition else ""
    return f"UPDATE {table} SET {assignments} WHERE {key} = %s{extra}", targets  # noqa: S608


# --- Queries compiled once ------------------------------------------------------------------


class PreparedQuery:
    """A query the hot path runs with new values on every message: written with the ORM, built
    and compiled once per process, then run as its SQL with the call's values.

    Through the ORM a one-row `filter(...).first()` costs about a millisecond of CPU, nine
    tenths of it building and compiling the query, against a tenth of a millisecond for the
    statement itself (docs/performance.md, change 33). `build` takes the query's values as
    keyword arguments, named with their types in `kinds` (uuid.UUID, int, str or datetime):
    it is called once with stand-ins, and each stand-in must reach the SQL's parameters as it
    was given (a lookup that rewrites its value, such as `icontains`, is refused). Rows become
    instances as the ORM makes them (converters, `select_related`, annotations), or tuples and
    values for `values_list`. Table names are unqualified, so one compiled query serves every
    tenant's schema."""

    def __init__(self, build: Callable[..., QuerySet[Any, Any]], **kinds: type) -> None:
        unsupported = {name for name, kind in kinds.items() if kind not in _STAND_INS}
        if unsupported:
            raise TypeError(f"no stand-in for the values {sorted(unsupported)}")
        self._build = build
        self._kinds = kinds
        self._ready: _Compiled | None = None

    def all(self, **values: Any) -> list[Any]:
        compiled = self._ready or self._compile()
        if values.keys() != self._kinds.keys():
            raise TypeError(f"expected the values {sorted(self._kinds)}, got {sorted(values)}")
        params = [
            slot.value if slot.name is None else _as(values[slot.name], slot.cast)
            for slot in compiled.slots
        ]
        connection = connections[compiled.db]
        if compiled.locks and connection.get_autocommit():
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction."
            )
        with self._cursor(connection) as cursor:
            cursor.execute(compiled.sql, params)
            rows = cursor.fetchall()
        return compiled.load(rows)

    def _cursor(self, connection: Any) -> Any:
        return connection.cursor()

    def first(self, **values: Any) -> Any:
        """The first row of `all`, or None. No order or limit is added, as `QuerySet.first`
        adds them: a query that can match several rows gives its own."""
        rows = self.all(**values)
        return rows[0] if rows else None

    def _compile(self) -> _Compiled:
        stand_ins = {name: _STAND_INS[kind]() for name, kind in self._kinds.items()}
        queryset = self._build(**stand_ins)
        if getattr(queryset, "_known_related_objects", None) or getattr(
            queryset, "_prefetch_related_lookups", None
        ):
            raise TypeError("a prepared query cannot prefetch or come from a related manager")
        compiler = queryset.query.get_compiler(using=queryset.db)
        # `as_sql` refuses a locking query outside a transaction; compiling runs nothing.
        with transaction.atomic(using=queryset.db, savepoint=False):
            sql, params = compiler.as_sql()
        by_value = {value: name for name, value in stand_ins.items()}
        # A value reaches the SQL as the field prepares it, maybe in a type of psycopg's (an
        # Int8 for a bigint): the call's values are given the same type.
        slots = [_Slot(name=by_value.get(param), value=param, cast=type(param)) for param in params]
        missing = set(stand_ins) - {slot.name for slot in slots}
        if missing:
            raise TypeError(f"the values {sorted(missing)} do not reach the SQL as given")
        self._ready = _Compiled(
            sql=sql,
            slots=slots,
            db=queryset.db,
            locks=queryset.query.select_for_update,
            load=_loader(queryset, compiler),
        )
        return self._ready


class KeptPlanQuery(PreparedQuery):
    """A PreparedQuery that PostgreSQL also keeps prepared, for the queries whose planning costs
    more than running them: a page of the API's conversation list (four tables joined and a
    subquery per row) took 6.6 to 8 ms to plan and 1.3 ms to run (docs/performance.md, change 48).

    Django binds values into the statement's text, so PostgreSQL parses and plans every
    statement afresh; this query's statement is sent with its values apart and prepared once
    per connection, and after five runs PostgreSQL keeps a generic plan when it costs no more
    than the custom ones. A statement prepared in one tenant's schema is parsed again when the
    `search_path` has changed (PostgreSQL's own rule), so it never reads another tenant's
    tables. Every other statement is prepared after five runs on a connection (change 53);
    these are prepared on the first, as each run saves milliseconds.
    `HUB_DB_PREPARED_STATEMENTS=0` turns both off for a pooler that cannot follow them."""

    def _cursor(self, connection: Any) -> Any:
        if not settings.HUB_DB_PREPARED_STATEMENTS:
            return super()._cursor(connection)
        # Django's cursor on the same connection (django-tenants sets the tenant's search_path
        # when one is made; errors and logged queries as Django wraps them), binding on the
        # server.
        # The setting also gives every connection psycopg's `prepare_threshold` (hub.settings),
        # without which a statement asked to be prepared is not.
        connection.cursor().close()
        cursor = _PreparingCursor(connection.connection)
        cursor.logged = connection.queries_logged
        return connection._prepare_cursor(cursor)


class _PreparingCursor(psycopg.Cursor[Any]):
    logged = False

    def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
        super().execute(query, params, prepare=True, binary=options.get("binary"))
        if self.logged:
            # Django's query log (tests, DEBUG) reads what ran from `_query`, which psycopg
            # leaves empty when it runs a prepared statement: the text with its values in
            # place, as Django logs the others.
            text = psycopg.ClientCursor(self.connection).mogrify(query, params)
            self._query = _Ran(text.encode())  # type: ignore[assignment]
        return self


@dataclass(frozen=True)
class _Ran:
    query: bytes


def prepared_exists(build: Callable[..., QuerySet[Any, Any]], **kinds: type) -> Callable[..., bool]:
    """Whether `build`'s query has a row, as `QuerySet.exists()` says, compiled once as
    PreparedQuery compiles. For the checks the periodic jobs run in every tenant every minute:
    through the ORM, building and compiling them cost 8 ms of a worker's CPU per tenant and
    minute (docs/performance.md, change 36)."""
    query = PreparedQuery(
        lambda **values: build(**values).order_by().values_list("pk", flat=True)[:1], **kinds
    )
    return lambda **values: query.first(**values) is not None


_STAND_INS: dict[type, Callable[[], Any]] = {
    uuid.UUID: uuid.uuid4,
    # Within a 32-bit column's range: Django turns a lookup past it into no SQL at all.
    int: lambda: 2**20 + secrets.randbelow(2**31 - 2**21),
    str: lambda: f"prepared-{secrets.token_hex(16)}",
    datetime: lambda: datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=secrets.randbits(30)),
}


def _as(value: Any, cast: type) -> Any:
    if value is None:
        # The ORM writes `IS NULL` for it: another statement than the one compiled.
        raise TypeError("a prepared query's values cannot be None")
    return value if type(value) is cast else cast(value)


@dataclass(frozen=True)
class _Slot:
    name: str | None  # a value of the call, or the query's own constant
    value: Any
    cast: type


@dataclass(frozen=True)
class _Compiled:
    sql: str
    slots: list[_Slot]
    db: str
    locks: bool
    load: Callable[[list[Any]], list[Any]]


def _loader(queryset: QuerySet[Any], compiler: SQLCompiler) -> Callable[[list[Any]], list[Any]]:
    """What `ModelIterable` (or the `values_list` iterables) does with the fetched rows, with
    everything that depends on the query alone worked out once."""
    iterable = queryset._iterable_class
    if iterable is FlatValuesListIterable:
        return lambda rows: [row[0] for row in compiler.results_iter([rows])]
    if iterable is ValuesListIterable:
        return lambda rows: list(compiler.results_iter([rows], tuple_expected=True))
    if iterable is not ModelIterable:
        raise TypeError(f"a prepared query gives instances or values_list, not {iterable}")
    klass_info, select = compiler.klass_info, compiler.select
    assert klass_info is not None
    model: type[Model] = klass_info["model"]
    start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
    init_list = [column[0].target.attname for column in select[start:end]]
    # Django 5.2's signature; the stubs describe a later one.
    populators = get_related_populators(klass_info, select, queryset.db)  # type: ignore[call-arg]
    annotations = list((compiler.annotation_col_map or {}).items())
    db = queryset.db

    def load(rows: list[Any]) -> list[Any]:
        instances = []
        for row in compiler.results_iter([rows]):
            instance = model.from_db(db, init_list, row[start:end])
            for populator in populators:
                populator.populate(row, instance)
            for name, position in annotations:
                setattr(instance, name, row[position])
            instances.append(instance)
        return instances

    return load


# --- Instances read from the database --------------------------------------------------------


class FastLoadingModel(Model):
    """A model whose rows become instances without running `Model.__init__`.

    Django makes each instance it reads through `__init__`, which walks every concrete field,
    fills the deferred ones with a marker and assigns each value through its descriptor: about
    20 µs an instance here, and a list page makes three per conversation (its contact and last
    message), a third of the page's CPU (docs/performance.md, change 47). `from_db` is Django's
    documented hook for this: here the values read go straight into the instance's `__dict__`,
    where `__init__` would have put them (a deferred field is one absent from it, as Django
    keeps it). What `__init__` does besides (the `pre_init` and `post_init` signals) is done
    the long way whenever a receiver listens for the model."""

    class Meta:
        abstract = True

    # Django 5.2's signature; the stubs describe a later one.
    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any) -> Any:  # type: ignore[override]
        # `receivers` first: asking a signal about a sender costs more than the rest of this.
        if (pre_init.receivers and pre_init.has_listeners(cls)) or (
            post_init.receivers and post_init.has_listeners(cls)
        ):
            return super().from_db(db, field_names, values)
        instance = cls.__new__(cls)
        instance.__dict__.update(zip(field_names, values, strict=True))
        state = instance._state = ModelState()
        state.adding = False
        state.db = db
        return instance


def advisory_key(name: str) -> int:
    """The 64-bit key PostgreSQL's advisory locks take, for a name (a tenant's schema in it
    keeps tenants apart)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def connection_return_to_pool() -> None:
    """Gives this thread's connection back to the process's pool before a wait on something
    else (a model's seconds of thought), where there is a pool and no transaction is open. The
    next query takes one from the pool again, so a process's threads waiting on models hold
    none (docs/performance.md, change 43). Nothing the hub does keeps state in the session
    across such a wait: conversations are held by leases, rows. Without a pool a connection
    is kept: closing it would mean connecting again."""
    conn = default_connection
    if (
        conn.connection is not None
        and conn.settings_dict["OPTIONS"].get("pool")
        and not conn.in_atomic_block
    ):
        conn.close()
