"""Extraction's periodic job (scheduled every minute in jobs/schedules.py)."""

from __future__ import annotations

from typing import Any

from extraction.services import extraction_dispatch
from jobs.registry import tenant_job


@tenant_job("extraction.dispatch")
def dispatch() -> dict[str, Any]:
    return extraction_dispatch()
