"""`migrate_schemas` without the tenant schemas that have nothing to migrate.

django-tenants runs Django's `migrate` in every schema, one after the other, even when there is
nothing to apply: each run introspects the schema (a scan of every relation of every schema), loads
the migration graph and renders every model for the post-migrate signal — about a second per
schema at 1,000 tenants, so a deploy without a new migration spent a quarter of an hour. A schema
whose `django_migrations` already holds every migration on disk is left out here, so such a run
costs one query per schema; any schema missing one is migrated exactly as before, with its signals.

Only a plain forward run is trimmed: with a target (app label, migration name) or `--fake`,
`--fake-initial`, `--plan`, `--check`, `--prune` or `--run-syncdb` every schema goes through
`migrate`, which has something to do or say for each of them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from functools import cache
from typing import Any

from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django_tenants.migration_executors import get_executor as django_tenants_executor
from django_tenants.migration_executors.base import MigrationExecutor
from psycopg import sql

EXPLICIT_OPTIONS = (
    "app_label",
    "migration_name",
    "fake",
    "fake_initial",
    "plan",
    "check_unapplied",
    "prune",
    "run_syncdb",
)


def get_executor(codename: str | None = None) -> type[MigrationExecutor]:
    """django-tenants' executor of that name (`--executor`), skipping up-to-date schemas
    (settings.GET_EXECUTOR_FUNCTION)."""
    executor = django_tenants_executor(codename)
    return type(executor.__name__, (SkipUpToDate, executor), {})


class SkipUpToDate(MigrationExecutor):
    """Put before an executor class: hands it only the schemas with a migration to apply."""

    def run_migrations(self, tenants: Iterable[str] | None = None) -> None:
        super().run_migrations(tenants=self._to_migrate(list(tenants or [])))

    def _to_migrate(self, schemas: list[str]) -> list[str]:
        if any(self.options.get(option) for option in EXPLICIT_OPTIONS):
            return schemas
        required = _required_migrations()
        kept = [
            schema
            for schema in schemas
            if schema == self.PUBLIC_SCHEMA_NAME or not _has_every_migration(schema, required)
        ]
        skipped = len(schemas) - len(kept)
        if skipped and int(self.options.get("verbosity", 1)) >= 1:
            sys.stdout.write(
                f"{skipped} of {len(schemas)} schemas already have every migration: skipped\n"
            )
        return kept


@cache
def _required_migrations() -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
    """Every migration on disk (a squashed one standing for those it replaces), with what it
    replaces: applied once it or all of those are."""
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    return {key: tuple(graph.nodes[key].replaces or ()) for key in graph.nodes}


def _has_every_migration(
    schema: str, required: dict[tuple[str, str], tuple[tuple[str, str], ...]]
) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = 'django_migrations'",
            [schema],
        )
        if cursor.fetchone() is None:
            return False
        cursor.execute(
            sql.SQL("SELECT app, name FROM {}").format(sql.Identifier(schema, "django_migrations"))
        )
        applied: set[Any] = set(cursor.fetchall())
    return all(
        key in applied or (replaces and applied.issuperset(replaces))
        for key, replaces in required.items()
    )
