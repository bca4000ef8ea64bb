from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from processing import services

BUSY_RETRY_SECONDS = 1
BUSY_MAX_RETRIES = 60


@shared_task(
    name="processing.conversation_drain", bind=True, acks_late=True, max_retries=BUSY_MAX_RETRIES
)
def conversation_drain_task(self: Task[Any, Any], conversation_id: str) -> int:
    try:
        return services.conversation_drain(conversation_id=conversation_id)
    except services.ConversationBusy as busy:
        # The worker holding it may have scanned before this message committed: look again soon.
        raise self.retry(countdown=BUSY_RETRY_SECONDS) from busy


@shared_task(name="processing.reply_charge_settle", acks_late=True)
def reply_charge_settle_task(message_id: str) -> None:
    services.reply_charge_settle(message_id=message_id)
