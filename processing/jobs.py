"""Processing's periodic jobs."""

from __future__ import annotations

from typing import Any

from jobs.registry import tenant_job
from processing.selectors import reply_charges_stranded, sweep_pending
from processing.services import conversations_with_unprocessed_messages


@tenant_job("processing.sweep", pending=sweep_pending)
def sweep() -> dict[str, Any]:
    """Re-enqueues conversations left unprocessed and replies left uncharged (lost tasks)."""
    from processing.tasks import conversation_drain_task, reply_charge_settle_task

    conversations = conversations_with_unprocessed_messages()
    for conversation_id in conversations:
        conversation_drain_task.delay(str(conversation_id))
    uncharged = reply_charges_stranded().values_list("message_id", flat=True)[:1000]
    for message_id in uncharged:
        reply_charge_settle_task.delay(str(message_id))
    return {"conversations": len(conversations), "charges": len(uncharged)}
