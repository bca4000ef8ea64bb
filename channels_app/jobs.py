"""The channels' periodic jobs, each with the check that says whether a tenant has work for it
(jobs/registry.py)."""

from __future__ import annotations

from typing import Any

from channels_app.delivery import pending_deliveries_sweep
from channels_app.inbound import inbound_events_sweep
from channels_app.models import ChannelKind
from channels_app.polling import imap_poll_channels, signal_poll_channels
from channels_app.selectors import (
    channels_polled_exist,
    inbound_events_stranded_exist,
    messages_stuck_pending,
)
from jobs.registry import tenant_job


@tenant_job("channels.sweep_inbound", pending=inbound_events_stranded_exist)
def sweep_inbound() -> dict[str, Any]:
    return inbound_events_sweep()


@tenant_job("channels.sweep_deliveries", pending=lambda: messages_stuck_pending().exists())
def sweep_deliveries() -> dict[str, Any]:
    return pending_deliveries_sweep()


@tenant_job("channels.poll_imap", pending=lambda: channels_polled_exist(kind=ChannelKind.EMAIL))
def poll_imap() -> dict[str, Any]:
    return imap_poll_channels()


@tenant_job("channels.poll_signal", pending=lambda: channels_polled_exist(kind=ChannelKind.SIGNAL))
def poll_signal() -> dict[str, Any]:
    return signal_poll_channels()
