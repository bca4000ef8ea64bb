"""Running jobs: one tenant at a time, once at a time."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.utils import timezone
from django_tenants.utils import schema_context

from hub.context import current_request_id
from hub.exceptions import ApplicationError
from hub.redis import get_redis
from jobs.models import JobRun
from jobs.registry import JOBS
from tenants.connection import tenant_connection
from tenants.selectors import tenant_list_active

logger = logging.getLogger(__name__)

LOCK_SECONDS = 15 * 60


class UnknownJob(ApplicationError):
    default_code = "unknown_job"


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


def job_run(*, job: str) -> JobRun | None:
    """Runs `job` in the current tenant's schema and records the run. Returns None when another
    run of the same job for this tenant holds the lock."""
    function = JOBS.get(job)
    if function is None:
        raise UnknownJob(f"No job named {job!r}.")
    schema = tenant_connection().schema_name
    with _job_lock(job=job, schema=schema) as acquired:
        if not acquired:
            logger.info("job already running; skipped", extra={"job": job, "schema": schema})
            return None
        started = timezone.now()
        try:
            result = function()
        except Exception as error:
            logger.exception("job failed", extra={"job": job, "schema": schema})
            return JobRun.objects.create(
                job=job,
                status=JobRun.Status.FAILED,
                error=type(error).__name__,
                request_id=current_request_id() or "",
                started_at=started,
                finished_at=timezone.now(),
            )
        run = JobRun.objects.create(
            job=job,
            status=JobRun.Status.SUCCEEDED,
            result=result,
            request_id=current_request_id() or "",
            started_at=started,
            finished_at=timezone.now(),
        )
        logger.info("job finished", extra={"job": job, "schema": schema, "result": result})
        return run


def job_dispatch(*, job: str) -> int:
    """Enqueues one run of `job` per active tenant, each carrying its tenant's schema."""
    from jobs.tasks import job_run_task

    if job not in JOBS:
        raise UnknownJob(f"No job named {job!r}.")
    tenants = tenant_list_active()
    for tenant in tenants:
        with schema_context(tenant.schema_name):
            job_run_task.delay(job)
    return len(tenants)
