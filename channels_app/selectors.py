"""Reads on channels. Every lookup runs in the current tenant's schema, so another tenant's id is
simply not found."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from channels_app.models import Channel, ChannelKind, InboundEvent
from conversations.models import Message
from hub.broker import broker_backlogged
from hub.db import PreparedQuery, prepared_exists
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


# A process's first sight of a channel, on a thousand tenants (docs/performance.md, change 55).
_WEBHOOK_CHANNEL = PreparedQuery(
    lambda channel_token, kind: Channel.objects.filter(
        channel_token=channel_token, kind=kind, enabled=True
    ),
    channel_token=str,
    kind=str,
)


def channel_get_for_webhook(*, schema: str, kind: str, channel_token: str) -> Channel | None:
    """The enabled channel a provider's webhook names, in the current schema (`schema`). Read on
    every webhook, so memoised briefly: a disabled channel stops taking webhooks within
    HUB_TENANT_CACHE_SECONDS."""
    return memo_get(
        ("webhook-channel", schema, kind, channel_token),
        lambda: _WEBHOOK_CHANNEL.first(channel_token=channel_token, kind=kind),
    )


# --- What the periodic sweeps and polls look for (channels_app/jobs.py) -------------------------

STRANDED_AFTER = timedelta(minutes=1)
# A task handed over this long ago and not done is taken for lost even while a backlog waits.
REQUEUE_AFTER = timedelta(minutes=10)
STUCK_AFTER = timedelta(minutes=15)


def inbound_events_stranded() -> QuerySet[InboundEvent]:
    """Events stored and still unprocessed a minute on whose task is not waiting in the queue:
    never handed over (the broker was down at receipt), an attempt that failed, or a task lost
    with its worker (killed mid-way). While tasks wait in the queue, an event handed over a
    minute ago may be one of them: then only those handed over REQUEUE_AFTER ago count, so a
    backlog is not queued a second time every minute (docs/performance.md, change 20)."""
    now = timezone.now()
    return _events_stranded(
        received_before=now - STRANDED_AFTER,
        handed_over_before=now - (REQUEUE_AFTER if broker_backlogged() else STRANDED_AFTER),
    )


def _events_stranded(
    *, received_before: datetime, handed_over_before: datetime
) -> QuerySet[InboundEvent]:
    return InboundEvent.objects.filter(
        Q(queued_at__isnull=True) | Q(queued_at__lt=handed_over_before),
        status=InboundEvent.Status.RECEIVED,
        received_at__lt=received_before,
    )


_ANY_STRANDED = prepared_exists(
    _events_stranded, received_before=datetime, handed_over_before=datetime
)


def inbound_events_stranded_exist() -> bool:
    """The inbound sweep's check, in every tenant every minute (hub.db.prepared_exists). The
    broker is asked only when an event counts without a backlog: none counts with one then."""
    now = timezone.now()
    stranded_before = now - STRANDED_AFTER
    if not _ANY_STRANDED(received_before=stranded_before, handed_over_before=stranded_before):
        return False
    return not broker_backlogged() or _ANY_STRANDED(
        received_before=stranded_before, handed_over_before=now - REQUEUE_AFTER
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


def channels_polled(*, kind: str) -> QuerySet[Channel]:
    """Enabled channels of a kind the hub polls (email over IMAP, Signal)."""
    return Channel.objects.filter(kind=kind, enabled=True)


_ANY_POLLED = prepared_exists(lambda kind: channels_polled(kind=kind), kind=str)


def channels_polled_exist(*, kind: ChannelKind) -> bool:
    """The polling jobs' check, in every tenant every minute (hub.db.prepared_exists)."""
    return _ANY_POLLED(kind=kind.value)
