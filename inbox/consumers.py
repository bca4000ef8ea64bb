"""The operator inbox socket: `/ws/inbox/` (tenant from the Host or `?tenant=`) and
`/t/<slug>/ws/inbox/`.

Operators authenticate with the session of the tenant's admin login. Sessions and users live in
the tenant's schema, so both are loaded under `schema_context` (Channels' AuthMiddleware would
read the public schema); another tenant's session cookie finds nothing and is refused like none.

Client → server frames (each may carry a `ref`, echoed by its `ack` or `error`):
    ping · open {conversation} · close {conversation} · typing {conversation, state}
    read {conversation, seq} · reply {conversation, text, client_id, private}
    action {conversation, action, operator, until} · availability {status}
Server → client: ready · pong · ack · error · event {event, payload} · typing · read · presence.

The socket joins `<schema>.inbox` (every event of the tenant) and the group of the one
conversation it has open (typing, read receipts and presence of that conversation).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any, TypeVar
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib import auth
from django.http import HttpRequest
from django.http.cookie import parse_cookie
from django_tenants.utils import schema_context

from conversations.live import conversation_group, inbox_group
from conversations.models import Operator
from hub.consumers import FrameConsumer
from hub.exceptions import ApplicationError
from inbox import selectors, services
from inbox.presence import operator_presence_touch, visitor_online

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_LARGE = 1009
MAX_FRAME_BYTES = 64 * 1024
# A burst of this many frames, refilled at this rate per second, per connection.
RATE_BURST = 40
RATE_PER_SECOND = 20.0
SEEN_EVENTS = 256

T = TypeVar("T")


@dataclass(frozen=True)
class OperatorIdentity:
    id: str
    name: str
    availability: str


class Refused(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _identify(schema: str, session_key: str) -> OperatorIdentity:
    """The operator behind a session of this tenant; refuses anonymous (4401) and users who are
    not operators (4403). An operator connecting while stored offline is online from now on."""
    with schema_context(schema):
        if not session_key:
            raise Refused(CLOSE_UNAUTHENTICATED)
        request = HttpRequest()
        request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        user = auth.get_user(request)
        if not user.is_authenticated or not user.is_active:
            raise Refused(CLOSE_UNAUTHENTICATED)
        operator = selectors.operator_for_user(user=user)
        if operator is None:
            raise Refused(CLOSE_FORBIDDEN)
        if operator.availability == Operator.Availability.OFFLINE:
            services.operator_availability_set(
                operator=operator, availability=Operator.Availability.ONLINE
            )
        operator_presence_touch(
            schema=schema, operator_id=str(operator.pk), availability=operator.availability
        )
        return OperatorIdentity(
            id=str(operator.pk), name=operator.display_name, availability=operator.availability
        )


def _operator(operator_id: str) -> Operator:
    operator = Operator.objects.filter(pk=operator_id, user__is_active=True).first()
    if operator is None:
        raise ApplicationError("This operator no longer exists.", code="not_an_operator")
    return operator


def _conversation_open(*, operator_id: str, conversation_id: str, schema: str) -> bool:
    """Checks the conversation is the tenant's; returns whether its visitor is online."""
    selectors.inbox_conversation_get(
        conversation_id=conversation_id, operator=_operator(operator_id)
    )
    return visitor_online(schema=schema, conversation_id=conversation_id)


def _reply(
    *, operator_id: str, conversation_id: str, text: str, client_id: str, private: bool
) -> dict[str, Any]:
    operator = _operator(operator_id)
    conversation = selectors.inbox_conversation_get(
        conversation_id=conversation_id, operator=operator
    )
    message, created = services.inbox_reply(
        conversation=conversation,
        operator=operator,
        text=text,
        client_id=client_id,
        is_private=private,
    )
    return {"message_id": str(message.pk), "seq": message.seq, "created": created}


def _action(
    *, operator_id: str, conversation_id: str, action: str, assignee_id: str | None, until: str
) -> dict[str, Any]:
    operator = _operator(operator_id)
    conversation = services.inbox_apply_action(
        conversation=selectors.inbox_conversation_get(
            conversation_id=conversation_id, operator=operator
        ),
        operator=operator,
        action=action,
        assignee_id=assignee_id,
        until=until,
    )
    return {
        "status": conversation.status,
        "ai_active": conversation.ai_active,
        "assignee": str(conversation.assignee_id) if conversation.assignee_id else None,
    }


def _read(*, operator_id: str, conversation_id: str, seq: int) -> int:
    operator = _operator(operator_id)
    conversation = selectors.inbox_conversation_get(
        conversation_id=conversation_id, operator=operator
    )
    return services.inbox_mark_read(conversation=conversation, operator=operator, seq=seq)


def _availability(*, operator_id: str, status: str) -> str:
    operator = services.operator_availability_set(
        operator=_operator(operator_id), availability=status
    )
    return operator.availability


class BadFrame(ApplicationError):
    default_code = "invalid_frame"


def _uuid(frame: dict[str, Any], key: str = "conversation") -> str:
    value = frame.get(key)
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise BadFrame(f"'{key}' must be an id.") from None


def _string(frame: dict[str, Any], key: str, *, limit: int, default: str = "") -> str:
    value = frame.get(key, default)
    if value is None:
        value = default
    if not isinstance(value, str) or len(value) > limit:
        raise BadFrame(f"'{key}' must be a string of at most {limit} characters.")
    return value


class InboxConsumer(FrameConsumer):
    schema: str
    operator: OperatorIdentity

    async def connect(self) -> None:
        # Accepted first, so the client sees why it is refused in the close code.
        await self.accept()
        self.open_conversation: str | None = None
        self.tokens = float(RATE_BURST)
        self.refilled_at = time.monotonic()
        self.seen: deque[tuple[Any, ...]] = deque(maxlen=SEEN_EVENTS)
        self.joined_inbox = False
        if not self._same_origin():
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.schema = self.scope["tenant_schema"]
        cookies = parse_cookie(self._header(b"cookie"))
        try:
            self.operator = await self._db(
                lambda: _identify(self.schema, cookies.get(settings.SESSION_COOKIE_NAME, ""))
            )
        except Refused as refused:
            await self.close(code=refused.code)
            return
        await self.channel_layer.group_add(inbox_group(self.schema), self.channel_name)
        self.joined_inbox = True
        await self.send_json(
            {
                "type": "ready",
                "operator": {
                    "id": self.operator.id,
                    "name": self.operator.name,
                    "availability": self.operator.availability,
                },
            }
        )

    async def disconnect(self, code: int) -> None:
        if not getattr(self, "joined_inbox", False):
            return
        await self._leave()
        await self.channel_layer.group_discard(inbox_group(self.schema), self.channel_name)

    def _header(self, name: bytes) -> str:
        for key, value in self.scope.get("headers") or []:
            if key == name:
                return str(value.decode("latin-1"))
        return ""

    def _same_origin(self) -> bool:
        """Browsers always send Origin: a page on another site must not use the operator's
        cookies to open this socket (cross-site WebSocket hijacking). Non-browser clients send
        none and must hold the session cookie anyway."""
        origin = self._header(b"origin")
        if not origin:
            return True
        host = self._header(b"host").split(":")[0].lower()
        return (urlsplit(origin).hostname or "") == host

    async def _db(self, call: Callable[[], T]) -> T:
        schema = self.scope["tenant_schema"]

        def run() -> T:
            with schema_context(schema):
                return call()

        return await database_sync_to_async(run)()

    # ---- Frames from the operator's browser ---------------------------------------------------

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if not getattr(self, "joined_inbox", False):
            return
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > MAX_FRAME_BYTES:
            await self.close(code=CLOSE_TOO_LARGE)
            return
        if not self._take_token():
            await self.send_error("rate_limited", "Too many frames; slow down.")
            return
        await super().receive(text_data=text_data, bytes_data=bytes_data, **kwargs)

    def _take_token(self) -> bool:
        now = time.monotonic()
        self.tokens = min(RATE_BURST, self.tokens + (now - self.refilled_at) * RATE_PER_SECOND)
        self.refilled_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        handler = self.HANDLERS.get(content["type"])
        ref = content.get("ref")
        if handler is None:
            await self._error(ref, "unknown_frame", f"Unknown frame type {content['type']!r}.")
            return
        try:
            await handler(self, content)
        except ApplicationError as error:
            await self._error(ref, error.error_code, str(error.detail), error.details)

    async def _error(
        self, ref: Any, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if details:
            frame["details"] = details
        if ref is not None:
            frame["ref"] = ref
        await self.send_json(frame)

    async def _ack(self, frame: dict[str, Any], **extra: Any) -> None:
        await self.send_json({"type": "ack", "ref": frame.get("ref"), **extra})

    async def on_ping(self, frame: dict[str, Any]) -> None:
        schema, operator_id = self.schema, self.operator.id
        availability = await self._db(lambda: _operator(operator_id).availability)
        await database_sync_to_async(operator_presence_touch)(
            schema=schema, operator_id=operator_id, availability=availability
        )
        pong: dict[str, Any] = {"type": "pong"}
        if frame.get("ref") is not None:
            pong["ref"] = frame["ref"]
        await self.send_json(pong)

    async def on_open(self, frame: dict[str, Any]) -> None:
        conversation_id = _uuid(frame)
        schema, operator_id = self.schema, self.operator.id
        online = await self._db(
            lambda: _conversation_open(
                operator_id=operator_id, conversation_id=conversation_id, schema=schema
            )
        )
        if conversation_id != self.open_conversation:
            await self._leave()
            self.open_conversation = conversation_id
            await self.channel_layer.group_add(
                conversation_group(self.schema, conversation_id), self.channel_name
            )
            await self._presence("online")
        await self._ack(frame, conversation=conversation_id)
        await self.send_json(
            {
                "type": "presence",
                "conversation": conversation_id,
                "who": "visitor",
                "status": "online" if online else "offline",
            }
        )

    async def on_close(self, frame: dict[str, Any]) -> None:
        await self._leave()
        await self._ack(frame)

    async def _leave(self) -> None:
        if self.open_conversation is None:
            return
        await self._presence("offline")
        await self.channel_layer.group_discard(
            conversation_group(self.schema, self.open_conversation), self.channel_name
        )
        self.open_conversation = None

    async def _presence(self, status: str) -> None:
        assert self.open_conversation is not None
        await self.channel_layer.group_send(
            conversation_group(self.schema, self.open_conversation),
            {
                "type": "hub.presence",
                "conversation": self.open_conversation,
                "who": "operator",
                "status": status,
                "name": self.operator.name,
                "sender_channel": self.channel_name,
            },
        )

    def _require_open(self, frame: dict[str, Any]) -> str:
        conversation_id = _uuid(frame)
        if conversation_id != self.open_conversation:
            raise BadFrame("Open the conversation first.", code="not_open")
        return conversation_id

    async def on_typing(self, frame: dict[str, Any]) -> None:
        conversation_id = self._require_open(frame)
        state = frame.get("state")
        if state not in ("start", "stop"):
            raise BadFrame("'state' is start or stop.")
        await self.channel_layer.group_send(
            conversation_group(self.schema, conversation_id),
            {
                "type": "hub.typing",
                "conversation": conversation_id,
                "who": "operator",
                "name": self.operator.name,
                "state": state,
                "sender_channel": self.channel_name,
            },
        )

    async def on_read(self, frame: dict[str, Any]) -> None:
        conversation_id = _uuid(frame)
        seq = frame.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise BadFrame("'seq' must be a whole number.")
        operator_id = self.operator.id
        position = await self._db(
            lambda: _read(operator_id=operator_id, conversation_id=conversation_id, seq=seq)
        )
        await self.channel_layer.group_send(
            conversation_group(self.schema, conversation_id),
            {
                "type": "hub.read",
                "conversation": conversation_id,
                "who": "operator",
                "seq": position,
                "sender_channel": self.channel_name,
            },
        )
        await self._ack(frame, seq=position)

    async def on_reply(self, frame: dict[str, Any]) -> None:
        conversation_id = _uuid(frame)
        text = _string(frame, "text", limit=4096)
        client_id = _string(frame, "client_id", limit=100)
        private = frame.get("private", False)
        if not isinstance(private, bool):
            raise BadFrame("'private' must be true or false.")
        operator_id = self.operator.id
        result = await self._db(
            lambda: _reply(
                operator_id=operator_id,
                conversation_id=conversation_id,
                text=text,
                client_id=client_id,
                private=private,
            )
        )
        await self._ack(frame, client_id=client_id, **result)

    async def on_action(self, frame: dict[str, Any]) -> None:
        conversation_id = _uuid(frame)
        action = _string(frame, "action", limit=30)
        assignee = _string(frame, "operator", limit=64) or None
        until = _string(frame, "until", limit=64)
        operator_id = self.operator.id
        result = await self._db(
            lambda: _action(
                operator_id=operator_id,
                conversation_id=conversation_id,
                action=action,
                assignee_id=assignee,
                until=until,
            )
        )
        await self._ack(frame, conversation=conversation_id, **result)

    async def on_availability(self, frame: dict[str, Any]) -> None:
        status = _string(frame, "status", limit=20)
        operator_id = self.operator.id
        availability = await self._db(lambda: _availability(operator_id=operator_id, status=status))
        await self._ack(frame, availability=availability)

    HANDLERS: dict[str, Callable[[InboxConsumer, dict[str, Any]], Any]] = {
        "ping": on_ping,
        "open": on_open,
        "close": on_close,
        "typing": on_typing,
        "read": on_read,
        "reply": on_reply,
        "action": on_action,
        "availability": on_availability,
    }

    # ---- Group messages ----------------------------------------------------------------------

    async def hub_event(self, message: dict[str, Any]) -> None:
        """Every event of the tenant, once: an event of the open conversation reaches this
        socket through both groups. Someone else's personal notification is not shown."""
        event, payload = message["event"], message["payload"]
        if event.startswith("notification.") and payload.get("operator") not in (
            None,
            self.operator.id,
        ):
            return
        key = (event, payload.get("id"), payload.get("updated_at") or payload.get("created_at"))
        if key in self.seen:
            return
        self.seen.append(key)
        await self.send_json({"type": "event", "event": event, "payload": payload})

    async def hub_typing(self, message: dict[str, Any]) -> None:
        if message.get("sender_channel") == self.channel_name:
            return
        await self.send_json(
            {
                "type": "typing",
                "conversation": message["conversation"],
                "who": message["who"],
                "name": message.get("name", ""),
                "state": message["state"],
            }
        )

    async def hub_read(self, message: dict[str, Any]) -> None:
        if message.get("sender_channel") == self.channel_name:
            return
        await self.send_json(
            {
                "type": "read",
                "conversation": message["conversation"],
                "who": message["who"],
                "seq": message["seq"],
            }
        )

    async def hub_presence(self, message: dict[str, Any]) -> None:
        if message.get("sender_channel") == self.channel_name:
            return
        await self.send_json(
            {
                "type": "presence",
                "conversation": message["conversation"],
                "who": message["who"],
                "status": message["status"],
                "name": message.get("name", ""),
            }
        )
