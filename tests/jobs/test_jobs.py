"""Periodic jobs: one place for every schedule, and each run once per tenant and schedule slot,
even when two beats dispatch the same tick (through a real worker on real Redis)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
from django.db import connection
from django_celery_beat.models import PeriodicTask
from django_tenants.utils import schema_context

from jobs import registry
from jobs.models import JobRun
from jobs.schedules import DEFAULT_SCHEDULES, schedules_ensure
from jobs.services import job_run, job_slot
from jobs.tasks import SLOT_HEADER, _stamp_slot, job_dispatch_task
from tenants.connection import tenant_connection
from tests import support

SLOT = datetime(2030, 1, 1, 3, 17, tzinfo=UTC)


def test_every_scheduled_job_is_a_registered_job_and_the_new_ones_are_there() -> None:
    jobs = {job for job, _minute, _hour in DEFAULT_SCHEDULES.values()}
    assert jobs <= set(registry.JOBS), jobs - set(registry.JOBS)
    assert {"extraction.dispatch", "retention.apply"} <= jobs


def test_schedules_are_written_once_for_beat(tenants, db) -> None:
    tenant_connection().set_schema_to_public()
    schedules_ensure()
    task = PeriodicTask.objects.get(name="Extract leads from quiet conversations")
    assert (task.task, json.loads(task.args)) == ("jobs.dispatch", ["extraction.dispatch"])
    assert (task.crontab.minute, task.crontab.hour) == ("*", "*")
    daily = PeriodicTask.objects.get(name="Apply the data retention policy")
    assert (daily.crontab.minute, daily.crontab.hour) == ("41", "2")
    # An operator's edit survives the next deploy.
    daily.enabled = False
    daily.save()
    assert schedules_ensure() == 0
    assert not PeriodicTask.objects.get(pk=daily.pk).enabled


@pytest.mark.parametrize(
    ("published", "slot"),
    [
        ("2030-01-01T03:17:00.200", "2030-01-01T03:17:00"),
        ("2030-01-01T03:17:04.900", "2030-01-01T03:17:00"),
        # A second beat whose clock runs a little fast names the same tick.
        ("2030-01-01T03:16:58.000", "2030-01-01T03:17:00"),
        ("2030-01-01T03:17:31.000", "2030-01-01T03:18:00"),
    ],
)
def test_the_slot_is_the_nearest_minute(published: str, slot: str) -> None:
    at = datetime.fromisoformat(published).replace(tzinfo=UTC)
    assert job_slot(at=at) == datetime.fromisoformat(slot).replace(tzinfo=UTC)


def test_publishing_a_dispatch_stamps_its_slot() -> None:
    headers: dict[str, str] = {}
    _stamp_slot(headers=headers)
    stamped = datetime.fromisoformat(headers[SLOT_HEADER])
    assert (stamped.second, stamped.microsecond) == (0, 0)
    kept = {SLOT_HEADER: SLOT.isoformat()}
    _stamp_slot(headers=kept)
    assert kept == {SLOT_HEADER: SLOT.isoformat()}


def test_a_slot_runs_once_per_tenant(tenant_a, tenant_b) -> None:
    with tenant_a.schema():
        first = job_run(job="job_runs.prune", slot=SLOT)
        assert first is not None
        assert first.slot == SLOT
        assert job_run(job="job_runs.prune", slot=SLOT) is None
        assert job_run(job="job_runs.prune", slot=SLOT.replace(minute=18)) is not None
        # Runs started by hand name no slot and are never skipped for one.
        assert job_run(job="job_runs.prune") is not None
        assert job_run(job="job_runs.prune") is not None
        assert JobRun.objects.filter(slot=SLOT).count() == 1
    with tenant_b.schema():
        # The same slot in another tenant is that tenant's own run.
        assert job_run(job="job_runs.prune", slot=SLOT) is not None


def test_a_failing_job_still_takes_its_slot(tenant_a, monkeypatch) -> None:
    def broken() -> dict:
        raise RuntimeError("boom")

    monkeypatch.setitem(registry.JOBS, "test.broken", broken)
    with tenant_a.schema():
        run = job_run(job="test.broken", slot=SLOT)
        assert run is not None
        assert (run.status, run.error) == (JobRun.Status.FAILED, "RuntimeError")
        assert job_run(job="test.broken", slot=SLOT) is None


@pytest.mark.parametrize("job", ["extraction.dispatch", "retention.apply", "job_runs.prune"])
def test_a_job_runs_in_its_own_tenant_only(tenant_a, tenant_b, job: str) -> None:
    with tenant_a.schema():
        run = job_run(job=job, slot=SLOT)
        assert run is not None
        assert run.status == JobRun.Status.SUCCEEDED, run.error
    with tenant_b.schema():
        assert not JobRun.objects.exists()


def test_two_runs_of_one_slot_at_once_run_it_once(committed_db, monkeypatch) -> None:
    slug = committed_db["a"].slug
    calls: list[str] = []

    def slow() -> dict:
        calls.append(tenant_connection().schema_name)
        time.sleep(0.5)
        return {}

    monkeypatch.setitem(registry.JOBS, "test.slow", slow)
    results: list[object] = []

    def run() -> None:
        try:
            with schema_context(slug):
                results.append(job_run(job="test.slow", slot=SLOT))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert calls == [slug]
        assert sum(result is not None for result in results) == 1
        with schema_context(slug):
            assert JobRun.objects.filter(job="test.slow").count() == 1
    finally:
        with schema_context(slug):
            JobRun.objects.filter(job="test.slow").delete()


def _runs(slug: str, job: str) -> list[JobRun]:
    with schema_context(slug):
        return list(JobRun.objects.filter(job=job))


def test_two_beats_dispatching_the_same_tick_run_each_tenant_once(committed_db, worker) -> None:
    a, b = committed_db["a"].slug, committed_db["b"].slug
    job = "job_runs.prune"
    for slug in (a, b):
        with schema_context(slug):
            JobRun.objects.filter(job=job).delete()
    try:
        tenant_connection().set_schema_to_public()
        # Two beats, one tick: the same message twice, as each beat would publish it.
        for _ in range(2):
            job_dispatch_task.apply_async(args=[job], headers={SLOT_HEADER: SLOT.isoformat()})

        def settled() -> bool:
            # Two dispatches, each enqueueing a run per tenant: four runs, done or skipped.
            lines = worker.log().splitlines()
            return sum("jobs.run[" in line and "succeeded" in line for line in lines) >= 4

        support.wait_until(settled, timeout=60, what="four runs to finish or skip")
        for slug in (a, b):
            runs = _runs(slug, job)
            assert [run.slot for run in runs] == [SLOT], slug
    finally:
        for slug in (a, b):
            with schema_context(slug):
                JobRun.objects.filter(job=job).delete()
