"""Channels: creating and changing them, and handing outbound messages to them."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import transaction

from agents.models import Agent
from channels_app.config import config_merge, config_validate
from channels_app.models import Channel, ChannelKind
from conversations.models import Message
from conversations.services.messages import message_status_update
from hub.exceptions import ConflictError

logger = logging.getLogger(__name__)

# Channels whose delivery is the hub's own push: the visitor's socket (web chat) or the
# integrator's webhook (API). Once recorded, the message is sent.
SELF_DELIVERED = {ChannelKind.WEBCHAT, ChannelKind.API}


def message_deliver(*, message_id: uuid.UUID | str) -> Message | None:
    """Delivers one pending outbound message. Idempotent: a message no longer pending is left
    alone, so a redelivered task sends nothing twice."""
    message = (
        Message.objects.select_related("channel", "conversation").filter(pk=message_id).first()
    )
    if message is None or message.status != Message.Status.PENDING:
        return message
    if message.channel.kind in SELF_DELIVERED:
        message_status_update(message=message, status=Message.Status.SENT)
        return message
    logger.warning(
        "no provider adapter for this channel kind yet; message stays pending",
        extra={"message_id": str(message.pk), "channel_kind": message.channel.kind},
    )
    return message


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
