from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from webhooks import services


# The delivery's own retries (backoff, Retry-After, the 24 h window, the dead letter) live in
# the service and the database; `autoretry_for` covers only the database being unreachable.
@shared_task(
    name="webhooks.delivery_attempt",
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
    soft_time_limit=120,
    time_limit=150,
)
def webhook_delivery_attempt_task(delivery_id: str) -> None:
    services.webhook_delivery_attempt(delivery_id=delivery_id)
