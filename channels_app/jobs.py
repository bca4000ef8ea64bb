"""The channels' periodic jobs."""

from __future__ import annotations

from typing import Any

from channels_app.delivery import pending_deliveries_sweep
from channels_app.inbound import inbound_events_sweep
from channels_app.polling import imap_poll_channels, signal_poll_channels
from jobs.registry import tenant_job


@tenant_job("channels.sweep_inbound")
def sweep_inbound() -> dict[str, Any]:
    return inbound_events_sweep()


@tenant_job("channels.sweep_deliveries")
def sweep_deliveries() -> dict[str, Any]:
    return pending_deliveries_sweep()


@tenant_job("channels.poll_imap")
def poll_imap() -> dict[str, Any]:
    return imap_poll_channels()


@tenant_job("channels.poll_signal")
def poll_signal() -> dict[str, Any]:
    return signal_poll_channels()
