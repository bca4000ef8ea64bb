"""Django's PostgreSQL backend, with a pool that hands out the connection given back last.

django-tenants builds its backend on this one (ORIGINAL_BACKEND, hub/settings/base.py).
psycopg_pool hands its idle connections out in turn, oldest first, so under load every
connection of a process's pool serves every tenant, and each connection's PostgreSQL backend
loads and keeps the catalog entries of every schema it is sent to. Handed out last-in first,
the work stays on as few connections as the process's concurrency needs, whose caches are
already warm, and the rest idle until a burst needs them (docs/performance.md, change 54).

Each connection also carries the `search_path` its session has, as far as the hub knows
(hub.postgresql.tenants): the pool forgets it when it rolls back a connection given back inside
a transaction.

A connection that began a statement less than `HEALTH_CHECK_AFTER_IDLE_SECONDS` ago is handed
to the next request or task unchecked. The check (the pool's empty query, or Django's
`SELECT 1` with a persistent connection) was a round trip on every webhook and every task, for
connections that were busy a moment before (docs/performance.md, change 63). A connection that
failed meanwhile is dropped on its failure, as before; only one whose server went away within
that second is handed out unchecked, and the request or task it serves fails as it would have
a moment earlier.
"""

from __future__ import annotations

import time
from typing import Any

from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

HEALTH_CHECK_AFTER_IDLE_SECONDS = 1.0


def _recently_used(session: Any) -> bool:
    used = getattr(session, "hub_used_at", None)
    return used is not None and time.monotonic() - used < HEALTH_CHECK_AFTER_IDLE_SECONDS


def session_search_path(session: Any) -> list[str] | None:
    """The schemas a psycopg connection's session searches, as last set by the hub, or None
    when unknown."""
    return getattr(session, "hub_search_path", None)


def session_search_path_forget(session: Any) -> None:
    if session is not None:
        session.hub_search_path = None


class RecentFirstPool(ConnectionPool):
    def _get_ready_connection(self, timeout: float | None) -> Any:
        # Called under the pool's lock. Connections are given back to the right of the deque
        # and taken from its left: the rotation brings the latest given back to the left. The
        # least recently used stay leftmost, where the pool shrinks from.
        self._pool.rotate(1)
        return super()._get_ready_connection(timeout)

    def _check_connection(self, conn: Any) -> None:
        if not _recently_used(conn):
            super()._check_connection(conn)

    def _reset_connection(self, conn: Any) -> None:
        if conn.pgconn.transaction_status != TransactionStatus.IDLE:
            session_search_path_forget(conn)  # the rollback that follows may undo a SET
        super()._reset_connection(conn)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> ConnectionPool | None:
        pool = super().pool
        # Django builds the pool itself, from settings, and opens it at the first connection
        # after this: its class can still change.
        if pool is not None and type(pool) is ConnectionPool:
            pool.__class__ = RecentFirstPool
        return pool

    def _cursor(self, name: str | None = None) -> Any:
        cursor = super()._cursor(name)  # type: ignore[misc]  # not in django-stubs
        self.connection.hub_used_at = time.monotonic()
        return cursor

    def close_if_health_check_failed(self) -> None:
        # Once per request or task, as Django checks: skipped now, not asked again later in it.
        if self.connection is not None and _recently_used(self.connection):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
