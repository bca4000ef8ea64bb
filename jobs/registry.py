"""Per-tenant periodic jobs: a name and a function that runs inside one tenant's schema.

Beat schedules `jobs.dispatch` (public schema) with a job name (jobs/schedules.py); publishing
stamps the message with its schedule slot (the beat tick, to the minute), the dispatcher
enqueues one run per active tenant carrying that slot, and each run holds a Redis lock per job
and tenant while it runs and records its slot, so two beats started by mistake, or a message
delivered twice, still run a job once per tenant and slot (jobs/services.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

JobFunction = Callable[[], dict[str, Any]]

JOBS: dict[str, JobFunction] = {}


def tenant_job(name: str) -> Callable[[JobFunction], JobFunction]:
    def register(function: JobFunction) -> JobFunction:
        JOBS[name] = function
        return function

    return register
