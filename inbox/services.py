"""Operator notifications: recorded, then pushed to the live inbox after commit."""

from __future__ import annotations

import uuid

from django.db import transaction

from hub.events import event_publish
from inbox.models import Notification


@transaction.atomic
def notification_create(
    *,
    kind: str,
    title: str,
    body: str = "",
    conversation_id: uuid.UUID | str | None = None,
    operator_id: uuid.UUID | str | None = None,
) -> Notification:
    notification = Notification.objects.create(
        kind=kind,
        title=title,
        body=body,
        conversation_id=conversation_id,
        operator_id=operator_id,
    )
    event_publish(
        name="notification.created",
        payload={
            "id": str(notification.pk),
            "kind": kind,
            "title": title,
            "body": body,
            "conversation": str(conversation_id) if conversation_id else None,
            "operator": str(operator_id) if operator_id else None,
            "created_at": notification.created_at.isoformat(),
        },
    )
    return notification
