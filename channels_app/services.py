"""Channels: creating and changing them."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from agents.models import Agent
from channels_app.config import config_merge, config_validate
from channels_app.models import Channel
from hub.exceptions import ConflictError


class ChannelInUse(ConflictError):
    default_code = "channel_in_use"
    default_detail = (
        "This channel has conversations, which keep it. Disable it instead "
        '(PATCH {"enabled": false}).'
    )


@transaction.atomic
def channel_create(
    *,
    kind: str,
    name: str,
    config: Any,
    agent: Agent | None = None,
    enabled: bool = True,
) -> Channel:
    """A new channel with its config validated for its kind (400 naming each bad key) and
    stored encrypted. The unguessable `channel_token` of its webhook URL is made here."""
    return Channel.objects.create(
        kind=kind,
        name=name,
        config=config_validate(kind=kind, config=config),
        agent=agent,
        enabled=enabled,
    )


@transaction.atomic
def channel_update(*, channel: Channel, **fields: Any) -> Channel:
    """Changes name, agent, enabled and config. A config is merged key by key into the stored
    one (secrets left out are kept, `null` removes a key) and validated whole. The kind and the
    token never change: a webhook URL, once registered with a provider, stays valid."""
    changed: list[str] = []
    for key in ("name", "agent", "enabled"):
        if key in fields:
            setattr(channel, key, fields[key])
            changed.append(key)
    if "config" in fields:
        channel.config = config_merge(
            kind=channel.kind, current=channel.config or {}, changes=fields["config"]
        )
        changed.append("config")
    if changed:
        channel.save(update_fields=[*changed, "updated_at"])
    return channel


@transaction.atomic
def channel_delete(*, channel: Channel) -> None:
    """Deletes a channel nothing refers to; one with conversations is a 409 (disable it)."""
    locked = Channel.objects.select_for_update().get(pk=channel.pk)
    if locked.conversations.exists():
        raise ChannelInUse()
    locked.delete()
