"""The session advisory locks that keep slow work on one conversation to one worker, and the
pooled connection a thread gives back while it waits on a model (hub/db.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import psycopg
import pytest
from django.db import connection

from hub.db import advisory_key, advisory_lock_held
from tests.support import child_env, database_url_for_tests

# Run in a process of its own, whose settings have a pool when HUB_DB_POOL_MAX_SIZE says so.
_GIVE_BACK = """
import json

import django

django.setup()
from django.db import connection, transaction

from hub.db import advisory_lock_held, connection_return_to_pool


def backend():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


kept = {}
backend()
with advisory_lock_held("give-back:locked") as held:
    connection_return_to_pool()
    kept["holding a session lock"] = connection.connection is not None
with transaction.atomic():
    backend()
    connection_return_to_pool()
    kept["in a transaction"] = connection.connection is not None
backend()
connection_return_to_pool()
kept["otherwise"] = connection.connection is not None
backend()
print(json.dumps(kept))
"""


def _free(observer: psycopg.Connection, name: str) -> bool:
    """Whether another session could take the lock now (it gives it straight back)."""
    key = advisory_key(name)
    (taken,) = observer.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone() or (False,)
    if taken:
        observer.execute("SELECT pg_advisory_unlock(%s)", [key])
    return bool(taken)


def test_the_lock_is_held_for_the_block_and_one_holder_at_a_time(committed_db) -> None:
    with psycopg.connect(database_url_for_tests(), autocommit=True) as observer:
        with advisory_lock_held("tenant_a:conversation") as held:
            assert held
            assert not _free(observer, "tenant_a:conversation")
            assert _free(observer, "tenant_b:conversation")
            # Its own session takes it again, and gives back only that second hold.
            with advisory_lock_held("tenant_a:conversation") as again:
                assert again
            assert not _free(observer, "tenant_a:conversation")
        assert _free(observer, "tenant_a:conversation")


def test_a_connection_lost_inside_the_block_is_closed_and_the_lock_gone(committed_db) -> None:
    with psycopg.connect(database_url_for_tests(), autocommit=True) as observer:
        with advisory_lock_held("tenant_a:lost") as held:
            assert held
            observer.execute(
                "SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid]
            )
        assert connection.connection is None
        assert _free(observer, "tenant_a:lost")
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)


@pytest.mark.parametrize(
    ("pool_size", "kept_otherwise"), [("1", False), ("0", True)], ids=["pool", "no-pool"]
)
def test_a_pooled_connection_is_given_back_unless_the_session_is_needed(
    committed_db, pool_size: str, kept_otherwise: bool
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _GIVE_BACK],
        env=child_env(HUB_DB_POOL_MAX_SIZE=pool_size),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "holding a session lock": True,
        "in a transaction": True,
        "otherwise": kept_otherwise,
    }
