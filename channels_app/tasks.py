from __future__ import annotations

from celery import shared_task

from channels_app import services


@shared_task(name="channels.message_deliver", acks_late=True)
def message_deliver_task(message_id: str) -> None:
    services.message_deliver(message_id=message_id)
