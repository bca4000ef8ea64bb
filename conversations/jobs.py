"""The conversation domain's periodic jobs."""

from __future__ import annotations

from typing import Any

from conversations.selectors import conversations_snoozed_due_exist
from conversations.services.conversations import conversations_wake_snoozed
from jobs.registry import tenant_job


@tenant_job("conversations.wake_snoozed", pending=conversations_snoozed_due_exist)
def wake_snoozed() -> dict[str, Any]:
    return conversations_wake_snoozed()
