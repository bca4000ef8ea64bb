"""Who is connected right now, kept in Redis with TTLs (the web chat writes the visitors' keys,
the inbox the operators'). A key outlives its socket by at most its TTL: sockets refresh it on
every ping (15 s), so a missing key means offline.

Presence is a live hint, never a source of truth: with Redis down everyone reads as offline and
nothing else breaks.

Two things outlive a socket that dies with its process (a killed or crashed web process sends
no "offline"), and the per-tenant `presence.sweep` job (every minute) puts them right:

- the operator's stored `availability`: connecting makes an operator `online`, and nothing
  stored ever said `offline` again, so handoffs kept going to operators long gone. An
  operator stored online whose inbox has not been seen for `GONE_AFTER_SECONDS` is stored
  offline (connecting again makes them online, as before), and the visitors of the
  conversations assigned to them hear it;
- the team's view of a visitor: told "online" and never told "offline". Visitors announced
  online whose presence key has expired are announced offline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from redis.exceptions import RedisError

from conversations.live import conversation_group
from conversations.models import Conversation, Operator
from conversations.services.operators import operator_set_availability
from hub.db import prepared_exists
from hub.redis import get_redis
from tenants.connection import tenant_connection
from webchat.presence import announced_visitors_key

logger = logging.getLogger(__name__)

TTL_SECONDS = 30
# An operator whose inbox sent no ping for this long has no inbox open (pings come every 15 s).
GONE_AFTER_SECONDS = 120
# When this Redis started keeping presence: keys lost with a restarted Redis come back with
# the next ping, so nobody is called gone before a whole GONE_AFTER_SECONDS has been watched.
WATCHING_SINCE_KEY = "hub:presence:watching_since"
# Removes a visitor from the announced set only if its presence key is gone (atomically: a
# visitor coming back at that moment stays announced).
_FORGET_IF_GONE = """
if redis.call('exists', KEYS[1]) == 0 then
    return redis.call('srem', KEYS[2], ARGV[1])
end
return 0
"""


def visitor_key(schema: str, conversation_id: str) -> str:
    return f"hub:presence:{schema}:visitor:{conversation_id}"


def operator_key(schema: str, operator_id: str) -> str:
    return f"hub:presence:{schema}:operator:{operator_id}"


def operator_seen_key(schema: str, operator_id: str) -> str:
    return f"hub:presence:{schema}:operator_seen:{operator_id}"


def operator_presence_touch(*, schema: str, operator_id: str, availability: str) -> None:
    """The operator's socket is alive, with this availability (online or away)."""
    try:
        with get_redis().pipeline(transaction=False) as pipe:
            pipe.set(operator_key(schema, operator_id), availability, ex=TTL_SECONDS)
            pipe.set(operator_seen_key(schema, operator_id), 1, ex=GONE_AFTER_SECONDS)
            pipe.execute()
    except RedisError as error:
        logger.warning("presence not stored", extra={"error": type(error).__name__})


def operator_presence_get(*, schema: str, operator_ids: Iterable[str]) -> dict[str, str]:
    """Each connected operator's availability; an operator without a live socket is absent."""
    ids = list(operator_ids)
    if not ids:
        return {}
    try:
        values = get_redis().mget([operator_key(schema, operator_id) for operator_id in ids])
    except RedisError as error:
        logger.warning("presence not read", extra={"error": type(error).__name__})
        return {}
    return {
        operator_id: _text(value)
        for operator_id, value in zip(ids, values, strict=True)
        if value is not None
    }


def visitor_online(*, schema: str, conversation_id: str) -> bool:
    try:
        return bool(get_redis().exists(visitor_key(schema, conversation_id)))
    except RedisError as error:
        logger.warning("presence not read", extra={"error": type(error).__name__})
        return False


def _operators_gone(schema: str, operator_ids: list[str]) -> list[str] | None:
    """Those of `operator_ids` unseen for `GONE_AFTER_SECONDS`; None when Redis cannot tell
    (down, or not watched that long yet)."""
    client = get_redis()
    now = time.time()
    try:
        client.set(WATCHING_SINCE_KEY, now, nx=True)
        since = float(client.get(WATCHING_SINCE_KEY) or now)
        if now - since < GONE_AFTER_SECONDS:
            return None
        seen = client.mget([operator_seen_key(schema, operator_id) for operator_id in operator_ids])
    except RedisError as error:
        logger.warning("presence not read", extra={"error": type(error).__name__})
        return None
    return [
        operator_id for operator_id, value in zip(operator_ids, seen, strict=True) if value is None
    ]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _visitors_gone(schema: str) -> list[str]:
    """The announced visitors whose presence has expired, forgotten as they are returned."""
    client = get_redis()
    announced = announced_visitors_key(schema)
    try:
        members = client.smembers(announced)
        forget = client.register_script(_FORGET_IF_GONE)
        return [
            conversation_id
            for conversation_id in sorted(_text(member) for member in members)
            if forget(
                keys=[visitor_key(schema, conversation_id), announced], args=[conversation_id]
            )
        ]
    except RedisError as error:
        logger.warning("presence not read", extra={"error": type(error).__name__})
        return []


def _announce_offline(schema: str, conversation_id: str, *, who: str, name: str = "") -> None:
    """What a socket closing normally would have sent to the conversation's sockets."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {
        "type": "hub.presence",
        "conversation": conversation_id,
        "who": who,
        "status": "offline",
        "name": name,
    }
    try:
        async_to_sync(layer.group_send)(conversation_group(schema, conversation_id), message)
    except Exception as error:
        logger.warning("live push failed", extra={"error": type(error).__name__})


_ANY_OPERATOR_ONLINE = prepared_exists(
    lambda: Operator.objects.filter(availability=Operator.Availability.ONLINE)
)


def presence_sweep_pending() -> bool:
    """Whether the sweep has anyone to look at: an operator stored online, or a visitor the
    team was told about. With Redis down the sweep would leave both alone. Run in every
    tenant every minute (hub.db.prepared_exists)."""
    if _ANY_OPERATOR_ONLINE():
        return True
    schema = tenant_connection().schema_name
    try:
        return bool(get_redis().exists(announced_visitors_key(schema)))
    except RedisError:
        return False


def presence_sweep() -> dict[str, int]:
    """Stores offline the current tenant's operators stored online whose inbox is gone, and
    tells the team about visitors whose sockets died without a word (see the module's doc).
    Does nothing to operators while Redis cannot tell who is there."""
    schema = tenant_connection().schema_name
    online = {
        str(operator.pk): operator
        for operator in Operator.objects.filter(availability=Operator.Availability.ONLINE)
    }
    gone = _operators_gone(schema, list(online)) if online else []
    for operator_id in gone or []:
        operator = operator_set_availability(
            operator=online[operator_id], availability=Operator.Availability.OFFLINE
        )
        for assigned in Conversation.objects.filter(
            assignee=operator, status__in=[Conversation.Status.OPEN, Conversation.Status.PENDING]
        ).values_list("pk", flat=True):
            _announce_offline(schema, str(assigned), who="operator", name=operator.display_name)
    visitors = _visitors_gone(schema)
    for conversation_id in visitors:
        _announce_offline(schema, conversation_id, who="visitor")
    return {"operators_offline": len(gone or []), "visitors_offline": len(visitors)}
