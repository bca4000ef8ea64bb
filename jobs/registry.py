"""Per-tenant periodic jobs: a name and a function that runs inside one tenant's schema.

Beat schedules `jobs.dispatch` (public schema) with a job name; the dispatcher enqueues one run
per active tenant, and each run holds a Redis lock per job and tenant, so two beats started by
mistake still run a job once.
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
