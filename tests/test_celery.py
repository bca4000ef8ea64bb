"""Tasks run in the schema they were enqueued from, through a real worker on real Redis."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import uuid

import pytest
from django_tenants.utils import schema_context

from hub.context import request_id_var
from jobs.models import JobRun
from jobs.tasks import job_dispatch_task, job_run_task
from tenants.connection import tenant_connection
from tests import support


def _runs(slug: str) -> list[JobRun]:
    with schema_context(slug):
        return list(JobRun.objects.all())


def _clear(*slugs: str) -> None:
    for slug in slugs:
        with schema_context(slug):
            JobRun.objects.all().delete()


def test_task_enqueued_in_tenant_a_runs_in_schema_a(committed_db, worker) -> None:
    a, b = committed_db["a"].slug, committed_db["b"].slug
    _clear(a, b)
    try:
        token = request_id_var.set("trace-celery-42")
        try:
            with schema_context(a):
                job_run_task.delay("job_runs.prune")
        finally:
            request_id_var.reset(token)
        runs = support.wait_until(lambda: _runs(a), timeout=30, what="the job to run in A")
        assert len(runs) == 1
        assert runs[0].status == JobRun.Status.SUCCEEDED
        assert runs[0].request_id == "trace-celery-42"
        assert _runs(b) == []
        finished = [line for line in worker.log().splitlines() if '"job finished"' in line]
        assert finished
        assert '"request_id": "trace-celery-42"' in finished[0]
        assert f'"schema": "{a}"' in finished[0]
    finally:
        _clear(a, b)


def test_dispatcher_runs_a_job_once_per_active_tenant(committed_db, worker) -> None:
    a, b = committed_db["a"].slug, committed_db["b"].slug
    _clear(a, b)
    try:
        tenant_connection().set_schema_to_public()
        job_dispatch_task.delay("job_runs.prune")
        support.wait_until(lambda: _runs(a) and _runs(b), timeout=30, what="a run in each tenant")
        assert len(_runs(a)) == 1
        assert len(_runs(b)) == 1
        assert _runs("_template") == []
    finally:
        _clear(a, b)


def test_a_periodic_job_does_not_wait_behind_a_backlog_of_inbound_work(
    committed_db, tmp_path
) -> None:
    """Inbound events and the minute's jobs go to queues of their own, and the worker takes
    from each in turn: a job published after 400 inbound tasks runs long before the last of
    them (before the queues, it ran after all of them)."""
    from channels_app.tasks import inbound_event_process_task

    a = committed_db["a"].slug
    _clear(a)
    backlog = 400
    tasks = ("jobs.run[", "inbound_event_process[")
    try:
        # Queued before the worker starts, so that it finds the whole backlog waiting.
        with schema_context(a):
            # Events that do not exist: each task looks, finds nothing and ends.
            for _ in range(backlog):
                inbound_event_process_task.delay(str(uuid.uuid4()))
            job_run_task.delay("job_runs.prune")
        with support.celery_worker(tmp_path) as worker:

            def finished() -> list[str]:
                return [
                    line
                    for line in worker.log().splitlines()
                    if " succeeded in " in line and any(task in line for task in tasks)
                ]

            support.wait_until(
                lambda: len(finished()) == backlog + 1, timeout=120, what="every task to run"
            )
            ran = finished()
        before_job = next(i for i, line in enumerate(ran) if "jobs.run[" in line)
        assert before_job < backlog / 2, f"{before_job} inbound tasks ran before the job"
        assert len(_runs(a)) == 1
    finally:
        _clear(a)


def test_each_kind_of_work_is_published_to_its_queue() -> None:
    from hub.celery import app

    def queue(task: str) -> str:
        return str(app.amqp.router.route({}, task)["queue"].name)

    assert queue("channels.inbound_event_process") == "celery"
    assert queue("processing.conversation_drain") == "celery"
    assert queue("channels.message_deliver") == "replies"
    assert queue("webhooks.delivery_attempt") == "webhooks"
    assert queue("jobs.dispatch") == queue("jobs.run") == "jobs"
    # A worker without `-Q` consumes every queue tasks are sent to.
    assert {q.name for q in app.amqp.queues.consume_from.values()} == {
        "celery",
        "replies",
        "webhooks",
        "jobs",
    }


def test_two_tasks_in_two_threads_keep_their_own_request_ids() -> None:
    """A threads pool runs the same task object in several threads at once: each run's request
    id is set and forgotten in its own thread, in whatever order the runs end."""
    from hub.celery import REQUEST_ID_HEADER, _forget_request_id, _restore_request_id

    seen: dict[str, list[str | None]] = {"first": [], "second": []}
    errors: list[BaseException] = []
    steps = {name: threading.Event() for name in ("first started", "second started", "first ended")}

    def run(name: str, wait_before_start: str, started: str, wait_before_end: str) -> None:
        try:
            if wait_before_start:
                steps[wait_before_start].wait(10)
            job_run_task.push_request(headers={REQUEST_ID_HEADER: f"trace-{name}"})
            _restore_request_id(task=job_run_task)
            seen[name].append(request_id_var.get())
            steps[started].set()
            if wait_before_end:
                steps[wait_before_end].wait(10)
            _forget_request_id(task=job_run_task)
            seen[name].append(request_id_var.get())
            if name == "first":
                steps["first ended"].set()
        except BaseException as error:
            errors.append(error)
        finally:
            job_run_task.pop_request()

    # The first starts, the second starts, the first ends, then the second ends.
    threads = [
        threading.Thread(target=run, args=("first", "", "first started", "second started")),
        threading.Thread(
            target=run, args=("second", "first started", "second started", "first ended")
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert seen == {"first": ["trace-first", None], "second": ["trace-second", None]}


def test_celery_reads_the_django_settings_it_was_given(settings) -> None:
    from hub.celery import app

    assert app.conf.task_acks_late is settings.CELERY_TASK_ACKS_LATE is True
    assert app.conf.broker_url == settings.CELERY_BROKER_URL
    assert app.conf.broker_transport_options == settings.CELERY_BROKER_TRANSPORT_OPTIONS
    assert app.conf.task_publish_retry_policy == settings.CELERY_TASK_PUBLISH_RETRY_POLICY


def test_a_broker_channel_keeps_one_redis_client_per_pool() -> None:
    from hub.broker import Channel
    from hub.celery import app

    with app.connection_for_write() as connection:
        channel = connection.default_channel
        assert isinstance(channel, Channel)
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        # A channel that dropped its pool (kombu does on errors) gets a client for the new one.
        channel._pool = None
        with channel.conn_or_acquire() as third:
            assert third is not first
            assert third.connection_pool is channel.pool
            assert third.ping()


# Also what Celery makes of the settings: the reuse count its Django fixup reads, and the
# deprecation warnings a worker would print at start.
PRODUCTION_DATABASE_SETTINGS = """
import json, sys, warnings
sys.argv = [sys.argv[1]]
from django.conf import settings
from celery.fixups.django import DjangoWorkerFixup
from hub.celery import app
database = settings.DATABASES["default"]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    app.conf.maybe_warn_deprecated_settings()
print(json.dumps([database["CONN_MAX_AGE"], "pool" in database["OPTIONS"],
                  DjangoWorkerFixup(app).db_reuse_max, [str(w.message) for w in caught]]))
"""


@pytest.mark.parametrize(
    ("program", "environment", "expected"),
    [
        # A worker keeps one connection an hour, whatever the number of tasks: a reconnect drops
        # PostgreSQL's catalog caches for every tenant schema (docs/performance.md, change 35).
        ("/venv/lib/python3/site-packages/celery/__main__.py", {}, [3600, False, 1_000_000, []]),
        ("/venv/bin/celery", {"HUB_DB_CONN_MAX_AGE": "300"}, [300, False, 1_000_000, []]),
        # Web processes pool their connections instead.
        ("/venv/bin/gunicorn", {}, [0, True, 1_000_000, []]),
    ],
)
def test_production_database_connections_by_process(
    program: str, environment: dict[str, str], expected: list[object]
) -> None:
    from cryptography.fernet import Fernet

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HUB_")},
        "DJANGO_SETTINGS_MODULE": "hub.settings.production",
        "HUB_SECRET_KEY": secrets.token_urlsafe(48),
        "HUB_FIELD_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": "postgres://hub@127.0.0.1:1/unused",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        **environment,
    }
    out = subprocess.run(
        [sys.executable, "-c", PRODUCTION_DATABASE_SETTINGS, program],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == expected
