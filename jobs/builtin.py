"""Jobs every tenant runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from jobs.models import JobRun
from jobs.registry import tenant_job

JOB_RUN_RETENTION = timedelta(days=30)


@tenant_job("job_runs.prune")
def job_runs_prune() -> dict[str, Any]:
    """Keeps the audit trail of job runs to its retention window."""
    deleted, _ = JobRun.objects.filter(started_at__lt=timezone.now() - JOB_RUN_RETENTION).delete()
    return {"deleted": deleted}
