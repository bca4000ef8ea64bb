"""django-tenants' backend, sending `SET search_path` only when a session has another path.

django-tenants forgets the path it set whenever the tenant is set, and the web sets it for
every webhook and request, a worker for every task; so a connection serving one tenant sent
the same `SET` before each of them, a round trip each (docs/performance.md, change 60). The
path a session has is kept on its psycopg connection, which outlives the wrapper's hold on it
in a pool, and is forgotten wherever it may have been undone: on a rollback (a `SET` made in
the transaction goes with it), on a rollback to a savepoint, and when the pool rolls back a
connection given back inside a transaction (hub.postgresql).
"""

from __future__ import annotations

from typing import Any

from django_tenants.postgresql_backend import base

from hub.postgresql.base import session_search_path, session_search_path_forget


class DatabaseWrapper(base.DatabaseWrapper):
    search_path_set_schemas: list[str] | None

    def _handle_search_path(self, cursor: Any = None) -> None:
        session = self.connection
        if (
            session is None
            or self.search_path_set_schemas is not None
            or self._setting_search_path
            or not self.schema_name
        ):
            # Set already, or set as django-tenants sets it (an error without a schema).
            super()._handle_search_path(cursor)
            return
        wanted = self._get_cursor_search_paths()
        if session_search_path(session) == wanted:
            self.search_path_set_schemas = wanted
            return
        super()._handle_search_path(cursor)
        # None when the SET failed: the session's path is then unknown.
        session.hub_search_path = self.search_path_set_schemas

    def rollback(self) -> None:
        session_search_path_forget(self.connection)
        super().rollback()

    def savepoint_rollback(self, sid: str) -> None:
        session_search_path_forget(self.connection)
        super().savepoint_rollback(sid)
