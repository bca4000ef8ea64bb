"""Running jobs: one tenant at a time, once at a time, once per schedule slot."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from hub.context import current_request_id
from hub.exceptions import ApplicationError
from hub.redis import get_redis
from jobs.models import JobRun
from jobs.registry import JOB_PENDING, JOBS
from tenants.connection import tenant_connection
from tenants.selectors import tenant_list_active

logger = logging.getLogger(__name__)

LOCK_SECONDS = 15 * 60


class UnknownJob(ApplicationError):
    default_code = "unknown_job"


def job_slot(*, at: datetime) -> datetime:
    """The schedule slot of a dispatch published at `at`: the nearest whole minute. Beat
    publishes a crontab tick within seconds after it, so two beats publishing the same tick
    (even with clocks a few seconds apart) name the same slot."""
    return (at + timedelta(seconds=30)).replace(second=0, microsecond=0)


@contextmanager
def _job_lock(*, job: str, schema: str) -> Iterator[bool]:
    client = get_redis()
    key = f"hub:job-lock:{schema}:{job}"
    token = uuid.uuid4().hex
    acquired = bool(client.set(key, token, nx=True, ex=LOCK_SECONDS))
    try:
        yield acquired
    finally:
        if acquired and client.get(key) == token.encode():
            client.delete(key)


def job_run(*, job: str, slot: datetime | None = None) -> JobRun | None:
    """Runs `job` in the current tenant's schema and records the run. Returns None, running
    nothing, when another run of the job holds this tenant's lock, or when `slot` has already
    been run here (a duplicate dispatch of the same beat tick)."""
    function = JOBS.get(job)
    if function is None:
        raise UnknownJob(f"No job named {job!r}.")
    schema = tenant_connection().schema_name
    with _job_lock(job=job, schema=schema) as acquired:
        if not acquired:
            logger.info("job already running; skipped", extra={"job": job, "schema": schema})
            return None
        # Checked under the lock: the run that recorded this slot has finished.
        if slot is not None and JobRun.objects.filter(job=job, slot=slot).exists():
            logger.info("job slot already run; skipped", extra={"job": job, "schema": schema})
            return None
        started = timezone.now()
        status, result, error = JobRun.Status.SUCCEEDED, {}, ""
        try:
            result = function()
        except Exception as failure:
            logger.exception("job failed", extra={"job": job, "schema": schema})
            status, error = JobRun.Status.FAILED, type(failure).__name__
        try:
            with transaction.atomic():
                run = JobRun.objects.create(
                    job=job,
                    status=status,
                    result=result,
                    error=error,
                    slot=slot,
                    request_id=current_request_id() or "",
                    started_at=started,
                    finished_at=timezone.now(),
                )
        except IntegrityError:
            # Only possible when a run outlived its lock: the slot is recorded once regardless.
            logger.warning("job slot recorded twice", extra={"job": job, "schema": schema})
            return None
        if status == JobRun.Status.SUCCEEDED:
            logger.info("job finished", extra={"job": job, "schema": schema, "result": result})
        return run


DISPATCH_BATCH = 200


def job_dispatch(*, job: str, slot: datetime | None = None) -> int:
    """Splits the active tenants into batches of DISPATCH_BATCH, one task each, so that
    finding who has work spreads over the workers. Returns how many tenants were handed out."""
    from jobs.tasks import job_dispatch_batch_task

    if job not in JOBS:
        raise UnknownJob(f"No job named {job!r}.")
    schemas = [tenant.schema_name for tenant in tenant_list_active()]
    for start in range(0, len(schemas), DISPATCH_BATCH):
        job_dispatch_batch_task.delay(
            job, slot.isoformat() if slot else None, schemas[start : start + DISPATCH_BATCH]
        )
    return len(schemas)


def _has_work(*, job: str, schema: str) -> bool:
    pending = JOB_PENDING.get(job)
    if pending is None:
        return True
    try:
        return pending()
    except Exception:
        # The run itself will meet the same fault and record it as its failure.
        logger.exception("job check failed", extra={"job": job, "schema": schema})
        return True


def job_dispatch_batch(*, job: str, slot: datetime | None, schemas: list[str]) -> int:
    """Enqueues one run of `job`, carrying its tenant's schema and the slot, for each of
    `schemas` with work for it (jobs/registry.py). Returns how many runs were enqueued."""
    from jobs.tasks import job_run_task

    enqueued = 0
    for schema in schemas:
        with schema_context(schema):
            if _has_work(job=job, schema=schema):
                job_run_task.delay(job, slot.isoformat() if slot else None)
                enqueued += 1
    return enqueued
