"""Extraction's periodic job (scheduled every minute in jobs/schedules.py)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from extraction.selectors import extraction_pending
from extraction.services import extraction_dispatch
from jobs.registry import tenant_job
from tenants.selectors import tenant_current


def _pending() -> bool:
    return extraction_pending(tenant=tenant_current(), now=timezone.now())


@tenant_job("extraction.dispatch", pending=_pending)
def dispatch() -> dict[str, Any]:
    return extraction_dispatch()
