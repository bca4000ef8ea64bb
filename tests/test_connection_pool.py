"""The pool's connections: given back while a thread waits on a model (hub/db.py), and handed
out last given back first (hub/postgresql)."""

from __future__ import annotations

import json

import pytest

from tests.support import python_output

# Run in a process of its own, whose settings have a pool when HUB_DB_POOL_MAX_SIZE says so.
_GIVE_BACK = """
import json

import django

django.setup()
from django.db import connection, transaction

from hub.db import connection_return_to_pool


def backend():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


kept = {}
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


@pytest.mark.parametrize(
    ("pool_size", "kept_otherwise"), [("1", False), ("0", True)], ids=["pool", "no-pool"]
)
def test_a_pooled_connection_is_given_back_outside_a_transaction(
    committed_db, pool_size: str, kept_otherwise: bool
) -> None:
    kept = json.loads(python_output(_GIVE_BACK, HUB_DB_POOL_MAX_SIZE=pool_size))
    assert kept == {
        "in a transaction": True,
        "otherwise": kept_otherwise,
    }


_ORDER = """
import json

import django

django.setup()
from django.db import connection

pool = connection.pool
pool.open(wait=True)
held = [pool.getconn() for _ in range(3)]
given_back = [held_connection.info.backend_pid for held_connection in held]
for held_connection in held:
    pool.putconn(held_connection)
used = []
for _ in range(6):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        used.append(cursor.fetchone()[0])
    connection.close()
print(json.dumps({"given back": given_back, "used": used}))
"""


def test_the_pool_hands_out_the_connection_given_back_last(committed_db) -> None:
    """One thread's work stays on one warm connection; psycopg_pool's own order would have
    passed it round all three, each loading the catalog of every schema it is sent to."""
    result = json.loads(python_output(_ORDER, HUB_DB_POOL_MAX_SIZE="3", HUB_DB_POOL_MIN_SIZE="3"))
    assert len(set(result["given back"])) == 3
    assert result["used"] == [result["given back"][-1]] * 6


# A connection's server goes away while it is idle; the next request or task takes it either
# within HEALTH_CHECK_AFTER_IDLE_SECONDS of its last statement (unchecked) or after (checked).
_HEALTH_CHECK = """
import json
import time

import django

django.setup()
import psycopg
from django.db import close_old_connections, connection
from django.db.utils import OperationalError

import hub.postgresql.base as backend

backend.HEALTH_CHECK_AFTER_IDLE_SECONDS = 0.5


def backend_pid():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def served_after(idle):
    first = backend_pid()
    close_old_connections()  # the end of a request or task
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [first])
    time.sleep(idle)
    close_old_connections()  # the start of the next
    try:
        second = backend_pid()
    except OperationalError:
        close_old_connections()  # the failed one's end: its connection is dropped
        return ["failed", backend_pid() != first]
    return ["served", second != first]


print(json.dumps({"at once": served_after(0), "after idling": served_after(0.7)}))
"""


@pytest.mark.parametrize(
    "env",
    [{"HUB_DB_POOL_MAX_SIZE": "1"}, {"HUB_DB_POOL_MAX_SIZE": "0", "HUB_DB_CONN_MAX_AGE": "60"}],
    ids=["pool", "persistent"],
)
def test_a_connection_idle_past_a_second_is_checked_one_busy_a_moment_ago_is_not(
    committed_db, env: dict[str, str]
) -> None:
    served = json.loads(python_output(_HEALTH_CHECK, **env))
    # Handed out unchecked: its request fails as it would have a moment earlier, and the
    # connection after it is a new one.
    assert served["at once"] == ["failed", True]
    # Checked, found dead and replaced before the request uses it.
    assert served["after idling"] == ["served", True]
