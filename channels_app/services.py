"""Handing outbound messages to their channel."""

from __future__ import annotations

import logging
import uuid

from channels_app.models import ChannelKind
from conversations.models import Message
from conversations.services.messages import message_status_update

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
