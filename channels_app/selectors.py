"""Reads on channels. Every lookup runs in the current tenant's schema, so another tenant's id is
simply not found."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from channels_app.models import Channel
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
