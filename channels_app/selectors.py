"""Reads on channels. Every lookup runs in the current tenant's schema, so another tenant's id is
simply not found."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from channels_app.models import Channel
from hub.exceptions import NotFoundError


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
