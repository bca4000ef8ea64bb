"""The automation app's periodic job."""

from __future__ import annotations

from typing import Any

from automation.selectors import reminders_due_exist
from automation.services import reminders_deliver_due
from jobs.registry import tenant_job


@tenant_job("automation.reminders_deliver", pending=reminders_due_exist)
def reminders_deliver() -> dict[str, Any]:
    """Delivers every reminder that has come due (the tasks scheduled at their time may have
    been lost, or the reminder was set more than an hour ahead)."""
    return reminders_deliver_due()
