"""Turns message events into processing work: a new inbound message drains its conversation;
a delivered AI reply is charged."""

from __future__ import annotations

import logging
from typing import Any

from django_tenants.utils import schema_context
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

DELIVERED = {"sent", "delivered", "read"}


def on_message_event(schema: str, name: str, payload: dict[str, Any]) -> None:
    from processing.tasks import conversation_drain_task, reply_charge_settle_task

    try:
        with schema_context(schema):
            if name == "message.created" and payload.get("direction") == "in":
                conversation_drain_task.delay(str(payload["conversation"]))
            elif (
                name == "message.updated"
                and payload.get("sender_type") == "ai"
                and payload.get("status") in DELIVERED
            ):
                reply_charge_settle_task.delay(str(payload["id"]))
    except (RedisError, BrokerError, OSError) as error:
        # The sweeper finds unprocessed conversations and uncharged replies later.
        logger.warning(
            "broker unavailable; processing left for the sweeper",
            extra={"error": type(error).__name__},
        )
