from __future__ import annotations

from celery import shared_task

from automation import services


@shared_task(name="automation.reminder_deliver", acks_late=True)
def reminder_deliver_task(reminder_id: str) -> bool:
    # Idempotent: a reminder snoozed, cancelled or delivered meanwhile is left alone.
    return services.reminder_deliver(reminder_id=reminder_id)
