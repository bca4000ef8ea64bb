"""Per-tenant periodic jobs: a name and a function that runs inside one tenant's schema.

Beat schedules `jobs.dispatch` (public schema) with a job name (jobs/schedules.py); publishing
stamps the message with its schedule slot (the beat tick, to the minute). The dispatcher
splits the active tenants into batches, and each batch enqueues one run per tenant that has
work for the job, carrying that slot. Each run holds a Redis lock per job and tenant while it
runs and records its slot, so two beats started by mistake, or a message delivered twice,
still run a job once per tenant and slot (jobs/services.py).

A job that runs every minute names a `pending` check: one cheap read (an EXISTS, a Redis
key) saying whether the tenant has anything for it to do. Without it, a thousand tenants
cost ten thousand tasks, locks and run records a minute for jobs that mostly find nothing.
A job without a check runs in every tenant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

JobFunction = Callable[[], dict[str, Any]]
PendingCheck = Callable[[], bool]

JOBS: dict[str, JobFunction] = {}
JOB_PENDING: dict[str, PendingCheck] = {}


def tenant_job(
    name: str, *, pending: PendingCheck | None = None
) -> Callable[[JobFunction], JobFunction]:
    def register(function: JobFunction) -> JobFunction:
        JOBS[name] = function
        if pending is not None:
            JOB_PENDING[name] = pending
        return function

    return register
