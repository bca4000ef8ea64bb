"""Retention's periodic job (scheduled daily in jobs/schedules.py)."""

from __future__ import annotations

from typing import Any

from jobs.registry import tenant_job
from retention.services import retention_apply


@tenant_job("retention.apply")
def apply() -> dict[str, Any]:
    run = retention_apply()
    return {"run": str(run.pk), **run.counts}
