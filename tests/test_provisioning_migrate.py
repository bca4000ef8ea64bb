"""`migrate_schemas` leaves out the schemas that already have every migration
(tenants.migration_executor), and a new tenant gets for real what the template lacks."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django_tenants.migration_executors import standard
from psycopg import sql

from tenants.connection import tenant_connection
from tenants.migration_executor import get_executor
from tenants.services import tenant_provision

# A leaf migration that only adds a column: easy to take out of a schema and to see put back.
MIGRATION = ("billing", "0002_creditbalance_low_alerted_at")
COLUMN = ("billing_creditbalance", "low_alerted_at")


def _take_out_the_migration(schema: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(
                sql.Identifier(schema, COLUMN[0]), sql.Identifier(COLUMN[1])
            )
        )
        cursor.execute(
            sql.SQL("DELETE FROM {} WHERE app = %s AND name = %s").format(
                sql.Identifier(schema, "django_migrations")
            ),
            MIGRATION,
        )


def _has_the_migration(schema: str) -> tuple[bool, bool]:
    """Whether the schema has the column, and whether it records the migration."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s AND column_name = %s",
            [schema, *COLUMN],
        )
        (column,) = cursor.fetchone()
        cursor.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE app = %s AND name = %s").format(
                sql.Identifier(schema, "django_migrations")
            ),
            MIGRATION,
        )
        (recorded,) = cursor.fetchone()
    return bool(column), bool(recorded)


@pytest.fixture
def migrated_schemas(monkeypatch) -> list[str]:
    """The schemas django-tenants runs `migrate` in."""
    migrated: list[str] = []
    original = standard.run_migrations

    def recording(*args: Any, **kwargs: Any) -> None:
        migrated.append(kwargs.get("schema_name") or args[3])
        original(*args, **kwargs)

    monkeypatch.setattr(standard, "run_migrations", recording)
    return migrated


def test_only_a_schema_missing_a_migration_is_migrated(
    committed_db: dict, migrated_schemas: list[str], capsys
) -> None:
    # Rolled back at the end: the schema and what is done to it.
    with transaction.atomic():
        tenant_provision(slug="mig_behind", name="Behind")
        _take_out_the_migration("mig_behind")
        assert _has_the_migration("mig_behind") == (False, False)
        migrated_schemas.clear()
        call_command("migrate_schemas", tenant=True, interactive=False, stdout=io.StringIO())
        assert migrated_schemas == ["mig_behind"]
        assert _has_the_migration("mig_behind") == (True, True)
        # Like django-tenants' own lines, on the process's standard output.
        assert "schemas already have every migration: skipped" in capsys.readouterr().out
        migrated_schemas.clear()
        call_command("migrate_schemas", tenant=True, interactive=False, verbosity=0)
        assert migrated_schemas == []
        transaction.set_rollback(True)
    tenant_connection().set_schema_to_public()


def test_explicit_runs_go_through_every_schema() -> None:
    executor = get_executor("standard")
    schemas = ["public", "tenant_a", "_template"]
    for option in ("fake", "migration_name", "plan", "check_unapplied", "prune"):
        instance = executor(args=[], options={option: "x", "verbosity": 0})
        assert instance._to_migrate(list(schemas)) == schemas


def test_a_new_tenant_gets_what_the_template_lacks_applied_for_real(
    committed_db: dict, migrated_schemas: list[str]
) -> None:
    """django-tenants recorded it as applied without applying it: the tenant lacked the column
    for good, `migrate_schemas` never coming back to it."""
    with transaction.atomic():
        _take_out_the_migration("_template")
        tenant_provision(slug="mig_ahead", name="Ahead")
        assert migrated_schemas == ["mig_ahead"]
        assert _has_the_migration("mig_ahead") == (True, True)
        transaction.set_rollback(True)
    tenant_connection().set_schema_to_public()
    assert _has_the_migration("_template") == (True, True)


def test_an_up_to_date_tenant_is_provisioned_without_running_migrate(
    committed_db: dict, migrated_schemas: list[str]
) -> None:
    with transaction.atomic():
        tenant_provision(slug="mig_level", name="Level")
        assert migrated_schemas == []
        assert _has_the_migration("mig_level") == (True, True)
        transaction.set_rollback(True)
    tenant_connection().set_schema_to_public()
