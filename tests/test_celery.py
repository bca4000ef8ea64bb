"""Tasks run in the schema they were enqueued from, through a real worker on real Redis."""

from __future__ import annotations

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
