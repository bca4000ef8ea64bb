"""The session advisory locks that keep slow work on one conversation to one worker (hub/db.py)."""

from __future__ import annotations

import psycopg
from django.db import connection

from hub.db import advisory_key, advisory_lock_held
from tests.support import database_url_for_tests


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
