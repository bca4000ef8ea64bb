"""The outgoing webhooks' periodic job."""

from __future__ import annotations

from typing import Any

from jobs.registry import tenant_job
from webhooks.selectors import webhook_deliveries_overdue_exist
from webhooks.services import webhook_deliveries_enqueue_due


@tenant_job("webhooks.deliver_due", pending=webhook_deliveries_overdue_exist)
def deliver_due() -> dict[str, Any]:
    return webhook_deliveries_enqueue_due()
