"""Reads on channels. Every lookup runs in the current tenant's schema, so another tenant's id is
simply not found."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from channels_app.models import Channel, ChannelKind, InboundEvent
from conversations.models import Message
from hub.exceptions import NotFoundError
from hub.memo import memo_get


def channel_list() -> QuerySet[Channel]:
    return Channel.objects.all()


def channel_get(*, channel_id: uuid.UUID | str) -> Channel:
    try:
        channel = Channel.objects.filter(pk=uuid.UUID(str(channel_id))).first()
    except ValueError:
        channel = None
    if channel is None:
        raise NotFoundError("No such channel.")
    return channel


def channel_get_for_webhook(*, schema: str, kind: str, channel_token: str) -> Channel | None:
    """The enabled channel a provider's webhook names, in the current schema (`schema`). Read on
    every webhook, so memoised briefly: a disabled channel stops taking webhooks within
    HUB_TENANT_CACHE_SECONDS."""
    return memo_get(
        ("webhook-channel", schema, kind, channel_token),
        lambda: Channel.objects.filter(
            channel_token=channel_token, kind=kind, enabled=True
        ).first(),
    )


# --- What the periodic sweeps and polls look for (channels_app/jobs.py) -------------------------

STRANDED_AFTER = timedelta(minutes=1)
STUCK_AFTER = timedelta(minutes=15)


def inbound_events_stranded() -> QuerySet[InboundEvent]:
    """Events stored but still unprocessed a minute on: the broker was down at receipt, or an
    attempt failed."""
    return InboundEvent.objects.filter(
        status=InboundEvent.Status.RECEIVED, received_at__lt=timezone.now() - STRANDED_AFTER
    )


def messages_stuck_pending(*, older_than: timedelta = STUCK_AFTER) -> QuerySet[Message]:
    """Outbound messages still pending long after they were written: their task was lost."""
    return Message.objects.filter(
        direction=Message.Direction.OUT,
        status=Message.Status.PENDING,
        is_private=False,
        deleted_at__isnull=True,
        updated_at__lt=timezone.now() - older_than,
    )


def channels_polled(*, kind: ChannelKind) -> QuerySet[Channel]:
    """Enabled channels of a kind the hub polls (email over IMAP, Signal)."""
    return Channel.objects.filter(kind=kind, enabled=True)
