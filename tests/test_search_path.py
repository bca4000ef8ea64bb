"""`SET search_path` only when a session has another tenant's path (hub.postgresql.tenants), and
never a statement run in the schema a rolled-back `SET` left behind."""

from __future__ import annotations

import json

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from channels_app.models import Channel, ChannelKind
from tenants.connection import tenant_connection
from tests.support import python_output


def _current_schema() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        return str(cursor.fetchone()[0])


def test_a_set_goes_only_to_a_session_with_another_path(tenant_a, tenant_b) -> None:
    with CaptureQueriesContext(connection) as queries:
        for context in (tenant_a, tenant_a, tenant_b, tenant_b, tenant_a):
            with context.schema():
                Channel.objects.count()
    sets = [query["sql"] for query in queries.captured_queries if query["sql"].startswith("SET")]
    assert sets == [
        f'SET search_path = "{tenant_a.slug}","public"',
        f'SET search_path = "{tenant_b.slug}","public"',
        f'SET search_path = "{tenant_a.slug}","public"',
    ]


def test_each_tenant_reads_its_own_rows_as_the_tenant_changes(tenant_a, tenant_b) -> None:
    for context in (tenant_a, tenant_b):
        with context.schema():
            Channel.objects.create(kind=ChannelKind.WEBCHAT, name=f"chat of {context.slug}")
    for context in (tenant_a, tenant_a, tenant_b, tenant_a, tenant_b, tenant_b):
        with context.schema():
            assert list(Channel.objects.values_list("name", flat=True)) == [
                f"chat of {context.slug}"
            ]


def test_a_set_undone_by_a_rollback_to_a_savepoint_is_sent_again(tenant_a, tenant_b) -> None:
    with tenant_a.schema():
        assert _current_schema() == tenant_a.slug
        savepoint = transaction.savepoint()
        # The SET comes after the savepoint, and the rollback to it runs in tenant b's path.
        tenant_connection().set_schema(tenant_b.slug)
        assert _current_schema() == tenant_b.slug
        transaction.savepoint_rollback(savepoint)
        # The session is back on tenant a's path; tenant b is still the one set.
        assert _current_schema() == tenant_b.slug


def test_a_set_undone_by_a_rollback_is_sent_again(committed_db) -> None:
    a, b = committed_db["a"].slug, committed_db["b"].slug
    with schema_context(a):
        assert _current_schema() == a
    with pytest.raises(RuntimeError):
        _in_a_transaction_rolled_back(b)
    with schema_context(b):
        assert _current_schema() == b


def _in_a_transaction_rolled_back(schema: str) -> None:
    with transaction.atomic():
        with schema_context(schema):
            assert _current_schema() == schema
        raise RuntimeError("rolled back")


# A connection given back to the pool inside a transaction is rolled back by the pool.
_GIVEN_BACK_IN_A_TRANSACTION = """
import json
import sys

import django

django.setup()
from django.db import connection, transaction
from django_tenants.utils import schema_context


def current_schema():
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema(), pg_backend_pid()")
        return cursor.fetchone()


a, b = sys.argv[1:]
seen = []
with schema_context(a):
    seen.append(current_schema())
connection.close()
try:
    with transaction.atomic():
        with schema_context(b):
            seen.append(current_schema())
            connection.close()
except Exception:
    pass
with schema_context(b):
    seen.append(current_schema())
print(json.dumps(seen))
"""


def test_a_set_undone_by_the_pools_rollback_is_sent_again(committed_db) -> None:
    a, b = committed_db["a"].slug, committed_db["b"].slug
    code = _GIVEN_BACK_IN_A_TRANSACTION.replace("sys.argv[1:]", repr([a, b]))
    seen = json.loads(python_output(code, HUB_DB_POOL_MAX_SIZE="1"))
    assert [schema for schema, _ in seen] == [a, b, b]
    # One connection throughout: the pool's rollback happened on the session checked.
    assert len({pid for _, pid in seen}) == 1
