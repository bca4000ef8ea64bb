"""The pooled connection a thread gives back while it waits on a model (hub/db.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import child_env

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
    result = subprocess.run(
        [sys.executable, "-c", _GIVE_BACK],
        env=child_env(HUB_DB_POOL_MAX_SIZE=pool_size),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "in a transaction": True,
        "otherwise": kept_otherwise,
    }
