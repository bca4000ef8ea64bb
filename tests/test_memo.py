"""The per-process memo (hub/memo.py): entries outlive HUB_TENANT_CACHE_SECONDS while the
generation counter in Redis is watched, every change made through the hub bumps it once
committed, and a process that sees it move forgets everything within a second."""

from __future__ import annotations

import pytest
import redis

from channels_app.services import channel_update
from hub import memo
from hub.celery import HubTask
from hub.redis import get_redis
from tenants.models import Tenant
from tenants.services import tenant_suspend
from tests.factories import ChannelFactory
from tests.support import MemoClock, python_output


class Loads:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        self.count += 1
        return self.count


def test_a_change_in_another_process_is_seen_within_a_second(memo_clock: MemoClock) -> None:
    load = Loads()
    assert memo.memo_get("k", load) == 1
    assert memo.memo_get("k", load) == 1
    get_redis().incr(memo.GENERATION_KEY)  # what another process's save does once committed
    memo_clock.now += 0.5
    assert memo.memo_get("k", load) == 1
    memo_clock.now += 0.6
    assert memo.memo_get("k", load) == 2


def test_entries_outlive_the_short_lifetime_while_the_counter_is_watched(
    memo_clock: MemoClock,
) -> None:
    load = Loads()
    memo.memo_get("k", load)
    held = 0.0
    while held + 10 < memo.HELD_SECONDS:
        memo_clock.now += 10  # twice HUB_TENANT_CACHE_SECONDS each step, the counter read each time
        held += 10
        assert memo.memo_get("k", load) == 1
    memo_clock.now += memo.HELD_SECONDS - held
    assert memo.memo_get("k", load) == 2


def test_with_redis_unreadable_entries_live_hub_tenant_cache_seconds(
    memo_clock: MemoClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(memo, "get_redis", lambda: dead)
    load = Loads()
    memo.memo_get("k", load)
    memo_clock.now += 4
    assert memo.memo_get("k", load) == 1
    memo_clock.now += 2
    assert memo.memo_get("k", load) == 2


def test_a_bump_redis_refused_is_made_at_a_later_read_of_the_counter(
    memo_clock: MemoClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries are held an hour: a change whose bump was lost would be hidden that long from
    the processes that can read the counter. The bump is owed until it goes through."""
    client = get_redis()
    before = int(client.get(memo.GENERATION_KEY) or 0)
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(memo, "get_redis", lambda: dead)
    memo._bump()
    memo_clock.now += memo.CHECK_SECONDS
    memo.memo_get("k", Loads())  # Redis still unreachable: still owed
    monkeypatch.setattr(memo, "get_redis", lambda: client)
    assert int(client.get(memo.GENERATION_KEY) or 0) == before
    memo_clock.now += memo.CHECK_SECONDS
    memo.memo_get("k", Loads())
    assert int(client.get(memo.GENERATION_KEY) or 0) == before + 1
    memo_clock.now += memo.CHECK_SECONDS
    memo.memo_get("k", Loads())
    assert int(client.get(memo.GENERATION_KEY) or 0) == before + 1  # paid once


# A management command that changed a tenant while Redis was unreachable, then exits.
_EXIT_OWING = """
import django

django.setup()
import redis

from hub import memo

reachable = memo.get_redis
memo.get_redis = lambda: redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
memo._bump()
assert memo._bump_owed["owed"]
memo.get_redis = reachable
"""


def test_a_process_exiting_with_a_bump_owed_makes_it_as_it_exits() -> None:
    client = get_redis()
    before = int(client.get(memo.GENERATION_KEY) or 0)
    python_output(_EXIT_OWING)
    assert int(client.get(memo.GENERATION_KEY) or 0) == before + 1


def test_a_full_memo_drops_its_oldest_entries_only(
    memo_clock: MemoClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memo, "MAX_ENTRIES", 20)
    monkeypatch.setattr(memo, "EVICTED_WHEN_FULL", 5)
    for key in range(20):
        memo.memo_get(key, lambda: "first")
    memo_clock.now += 1
    memo.memo_get(20, lambda: "first")
    assert len(memo._memo) == 16
    assert memo.memo_get(0, lambda: "again") == "again"  # among the five oldest
    assert memo.memo_get(5, lambda: "again") == "first"
    assert memo.memo_get(20, lambda: "again") == "first"


def test_a_load_that_straddles_a_change_is_not_served(memo_clock: MemoClock) -> None:
    """A load that read the old row, stored after another thread saw the change's bump."""
    memo.memo_get("warm", Loads())

    def slow_stale_load() -> str:
        get_redis().incr(memo.GENERATION_KEY)
        memo_clock.now += 1.5
        memo.memo_get("other", Loads())  # another thread notices the bump meanwhile
        return "stale"

    assert memo.memo_get("k", slow_stale_load) == "stale"
    assert memo.memo_get("k", lambda: "fresh") == "fresh"


def test_writes_through_the_hub_bump_the_counter_once_committed(
    tenant_a, memo_clock: MemoClock, django_capture_on_commit_callbacks
) -> None:
    client = get_redis()

    def generation() -> int:
        return int(client.get(memo.GENERATION_KEY) or 0)

    with tenant_a.schema():
        before = generation()
        with django_capture_on_commit_callbacks(execute=False) as pending:
            channel = ChannelFactory.create()
        assert generation() == before  # not before the commit
        for callback in pending:
            callback()
        assert generation() == before + 1
        with django_capture_on_commit_callbacks(execute=True):
            channel_update(channel=channel, enabled=False)
        assert generation() == before + 2
    with django_capture_on_commit_callbacks(execute=True):
        tenant_suspend(tenant=tenant_a.tenant)
    assert generation() > before + 2


def test_tasks_take_their_tenant_from_the_memo(
    tenant_a, tenant_b, memo_clock: MemoClock, django_assert_num_queries
) -> None:
    """Before every task the worker switches to the task's tenant: read once per process, not
    once per task, and each schema gets its own tenant."""
    first = HubTask.get_tenant_for_schema(schema_name=tenant_a.slug)
    with django_assert_num_queries(0):
        again = HubTask.get_tenant_for_schema(schema_name=tenant_a.slug)
    assert first.pk == again.pk == tenant_a.tenant.pk
    assert HubTask.get_tenant_for_schema(schema_name=tenant_b.slug).pk == tenant_b.tenant.pk
    with pytest.raises(Tenant.DoesNotExist):
        HubTask.get_tenant_for_schema(schema_name="no_such_tenant")
