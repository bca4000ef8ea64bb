"""The channels' periodic jobs."""

from __future__ import annotations

from typing import Any

from channels_app.inbound import inbound_events_sweep
from jobs.registry import tenant_job


@tenant_job("channels.sweep_inbound")
def sweep_inbound() -> dict[str, Any]:
    return inbound_events_sweep()
