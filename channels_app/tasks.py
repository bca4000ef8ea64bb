from __future__ import annotations

from celery import shared_task

from channels_app import inbound, services


@shared_task(name="channels.inbound_event_process", acks_late=True)
def inbound_event_process_task(event_id: str) -> None:
    inbound.inbound_event_process(event_id=event_id)


@shared_task(name="channels.message_deliver", acks_late=True)
def message_deliver_task(message_id: str) -> None:
    services.message_deliver(message_id=message_id)
