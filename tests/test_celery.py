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
