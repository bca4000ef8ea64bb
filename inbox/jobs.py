"""The inbox's periodic job (scheduled every minute in jobs/schedules.py)."""

from __future__ import annotations

from typing import Any

from inbox.presence import presence_sweep, presence_sweep_pending
from jobs.registry import tenant_job


@tenant_job("presence.sweep", pending=presence_sweep_pending)
def sweep() -> dict[str, Any]:
    return presence_sweep()
