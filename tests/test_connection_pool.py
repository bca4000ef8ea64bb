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
