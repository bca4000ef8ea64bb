"""Tenant shards (hub/shards.py): a tenant's inbound work goes to its shard's queue, and a worker
takes from its own shard first and from the others when its own is empty. Real Redis, a real
worker."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest
from django_tenants.utils import schema_context

from hub import broker
from hub.celery import app
from hub.shards import (
    STEAL_FIRST_EVERY,
    OwnShardFirst,
    shard_of_schema,
    shard_queue,
    shard_queues,
)
from jobs.models import JobRun
from jobs.tasks import job_run_task
from tests import support

SCHEMAS = [f"tenant_{i}" for i in range(400)]


def _purge(*queues: str) -> None:
    with app.pool.acquire(block=True) as connection:
        for queue in queues:
            connection.default_channel.queue_purge(queue)


def test_every_process_puts_a_schema_in_the_same_shard_and_the_shards_share_the_tenants() -> None:
    here = [shard_of_schema(schema_name=name, count=4) for name in SCHEMAS]
    # Another interpreter salts its str hashes differently: the shards must not move with it.
    there = support.python_output(
        "import json; from hub.shards import shard_of_schema; "
        f"print(json.dumps([shard_of_schema(schema_name=n, count=4) for n in {SCHEMAS!r}]))",
        PYTHONHASHSEED="12345",
    )
    assert json.loads(there) == here
    assert all(70 <= count <= 130 for count in Counter(here).values()), Counter(here)


def test_with_shards_a_tenants_inbound_work_is_published_to_its_shard(committed_db) -> None:
    """Through the publish path itself: the queue each task was published to, as
    `before_task_publish` sees it, in a process started with four shards."""
    a, b = committed_db["a"].slug, committed_db["b"].slug
    code = f"""
import json, uuid
import django
django.setup()
from celery.signals import before_task_publish
from django_tenants.utils import schema_context
from channels_app.tasks import inbound_event_process_task
from hub.celery import app
from jobs.tasks import job_run_task
published = []
before_task_publish.connect(
    lambda sender=None, routing_key=None, **kw: published.append([sender, routing_key]),
    weak=False,
)
for schema in ({a!r}, {b!r}):
    with schema_context(schema):
        inbound_event_process_task.delay(str(uuid.uuid4()))
        job_run_task.delay("job_runs.prune")
with app.pool.acquire(block=True) as connection:
    for queue in {shard_queues(4)!r} + ["jobs"]:
        connection.default_channel.queue_purge(queue)
consumed = sorted(q.name for q in app.amqp.queues.consume_from.values())
print(json.dumps({{"published": published, "consumed": consumed}}))
"""
    out = json.loads(support.python_output(code, HUB_TENANT_SHARDS="4"))
    queue_of = {
        schema: shard_queue(shard_of_schema(schema_name=schema, count=4)) for schema in (a, b)
    }
    assert out["published"] == [
        ["channels.inbound_event_process", queue_of[a]],
        ["jobs.run", "jobs"],
        ["channels.inbound_event_process", queue_of[b]],
        ["jobs.run", "jobs"],
    ]
    # A worker without -Q takes from every shard.
    assert out["consumed"] == sorted([*shard_queues(4), "replies", "webhooks", "jobs"])


def test_a_worker_shard_outside_the_count_is_refused_at_start() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=support.child_env(HUB_TENANT_SHARDS="4", HUB_WORKER_SHARD="4"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "HUB_WORKER_SHARD must be one of 0 to 3" in result.stderr


def test_a_worker_takes_its_own_shards_queue_first() -> None:
    queues = ["celery", "celery.1", "replies", "webhooks", "jobs", "celery.2"]
    cycle = OwnShardFirst(own="celery.1", shards=["celery", "celery.1", "celery.2"])
    cycle.update(queues)
    assert cycle.consume(6) == ["celery.1", "replies", "webhooks", "jobs", "celery", "celery.2"]
    # kombu moves the queue a task came from to the end: the shared queues and its own shard's
    # still take turns, ahead of the other shards.
    cycle.rotate("celery.1")
    cycle.rotate("celery")
    assert cycle.consume(6) == ["replies", "webhooks", "jobs", "celery.1", "celery.2", "celery"]
    orders = [cycle.consume(6) for _ in range(3 * STEAL_FIRST_EVERY)]
    others_first = [
        i for i, order in enumerate(orders, start=3) if order[0] in {"celery", "celery.2"}
    ]
    assert others_first == [STEAL_FIRST_EVERY, 2 * STEAL_FIRST_EVERY, 3 * STEAL_FIRST_EVERY]


def _finished_schemas(worker: support.Process) -> list[str]:
    return [
        json.loads(line)["schema"]
        for line in worker.log().splitlines()
        if line.startswith("{") and '"job finished"' in line
    ]


def _clear(*slugs: str) -> None:
    for slug in slugs:
        with schema_context(slug):
            JobRun.objects.all().delete()


def test_a_worker_takes_its_shard_first_then_the_others_each_in_its_own_tenant(
    committed_db, tmp_path
) -> None:
    """Tenant A's tasks wait in shard 0's queue, B's in shard 1's; a worker of shard 1 runs all
    of B's before any of A's, then A's, each in its own schema."""
    a, b = committed_db["a"].slug, committed_db["b"].slug
    each = 12
    _clear(a, b)
    _purge("celery", "celery.1")
    try:
        # Queued before the worker starts, so that it finds both backlogs waiting.
        for slug, queue in ((a, "celery"), (b, "celery.1")):
            with schema_context(slug):
                for _ in range(each):
                    job_run_task.apply_async(args=["job_runs.prune"], queue=queue)
        with support.celery_worker(tmp_path, HUB_TENANT_SHARDS="2", HUB_WORKER_SHARD="1") as worker:
            support.wait_until(
                lambda: len(_finished_schemas(worker)) == 2 * each,
                timeout=120,
                what="every task to run",
            )
            order = _finished_schemas(worker)
        assert order == [b] * each + [a] * each
        with schema_context(a):
            assert JobRun.objects.count() == each
        with schema_context(b):
            assert JobRun.objects.count() == each
    finally:
        _clear(a, b)
        _purge("celery", "celery.1")


@pytest.mark.django_db
def test_a_task_waiting_in_another_shards_queue_is_a_backlog(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker, "BACKLOG_CHECK_SECONDS", 0.0)
    settings.HUB_TENANT_SHARDS = 2
    _purge("celery", "celery.1")
    try:
        assert not broker.broker_backlogged()
        job_run_task.apply_async(args=["job_runs.prune"], queue="celery.1")
        assert broker.broker_backlogged()
    finally:
        _purge("celery", "celery.1")
