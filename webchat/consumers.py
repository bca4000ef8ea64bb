"""`/ws/webchat/?token=…`: a visitor's socket (CONTRACT §7).

The token names the tenant (schema), channel, visitor and conversation; every database call
runs in a worker thread under that schema, and the only group joined is the conversation's
(named with the schema), so a socket never sees another tenant's or conversation's events.

Messages reach the visitor in seq order without loss or repeats: the socket keeps a cursor (the
highest seq the visitor has been given), pushes the next one as its event arrives, and reads
any gap from the database (an event lost while Redis blinked, or private notes in between).

A socket has no channel-layer channel of its own: nothing is ever sent to one socket, only to
its conversation's group, whose messages the process's fan-out hands to each of the group's
sockets in turn (webchat/fanout.py). Work that waits on the database or Redis (a frame from the
visitor, a gap to read) runs one piece at a time per socket, as Channels' dispatch did; group
messages that arrive meanwhile wait in `held`, for this socket only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from time import monotonic
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError
from django_tenants.utils import schema_context

from conversations.content import InvalidContent
from conversations.live import conversation_group
from hub.consumers import FrameConsumer
from tenants.selectors import tenant_get_by_slug
from webchat import presence
from webchat.fanout import Fanout, fanout
from webchat.frames import answering_frame, new_message_frame, visitor_message
from webchat.selectors import (
    ReplayPage,
    VisitorContext,
    answering_get,
    origin_normalise,
    read_positions_get,
    visitor_context_get,
    visitor_message_get,
    visitor_messages_after,
)
from webchat.services import visitor_mark_read, visitor_message_receive
from webchat.tokens import VisitorClaims, visitor_token_read

logger = logging.getLogger(__name__)

CLOSE_BAD_TOKEN = 4401
# The page's origin is not allowed, or the tenant is suspended.
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_LARGE = 1009
# The socket did not take its messages in time (webchat/fanout.py): the widget reconnects.
CLOSE_STALLED = 1011
MAX_FRAME_BYTES = 64 * 1024
MAX_CLIENT_ID = 100
# Any frame at all, per connection and second: typing and pings included.
FRAMES_PER_SECOND = 30
# How long the visitor is shown "typing" for the AI after a message, unless its reply comes.
AI_TYPING_SECONDS = 30

# Database work runs in the thread pool, not Channels' single shared thread: thousands of
# sockets must not queue behind one another's queries.
_db = functools.partial(database_sync_to_async, thread_sensitive=False)

Frame = dict[str, Any]
Step = Callable[[], Awaitable[None]]


def messages_per_second() -> int:
    return int(getattr(settings, "HUB_WEBCHAT_MESSAGES_PER_SECOND", 10))


def typing_seconds() -> float:
    return float(getattr(settings, "HUB_WEBCHAT_TYPING_SECONDS", 5))


class _Window:
    """How many events happened in the last second (a sliding window per connection)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.times: deque[float] = deque()

    def allow(self) -> bool:
        now = monotonic()
        while self.times and now - self.times[0] >= 1.0:
            self.times.popleft()
        if len(self.times) >= self.limit:
            return False
        self.times.append(now)
        return True


@dataclass
class _Loaded:
    outcome: str
    context: VisitorContext | None = None
    answering: dict[str, Any] = field(default_factory=dict)
    team_read: int = 0
    visitor_read: int = 0


def _load(claims: VisitorClaims) -> _Loaded:
    tenant = tenant_get_by_slug(slug=claims.schema)
    if tenant is None:
        return _Loaded("invalid")
    if not tenant.is_active:
        return _Loaded("suspended")
    with schema_context(claims.schema):
        context = visitor_context_get(claims=claims)
        if context is None:
            return _Loaded("invalid")
        team_read, visitor_read = read_positions_get(
            conversation_id=context.conversation_id, contact_id=context.contact_id
        )
        return _Loaded(
            "ok",
            context,
            answering_get(conversation_id=context.conversation_id),
            team_read,
            visitor_read,
        )


class VisitorConsumer(FrameConsumer):
    ctx: VisitorContext
    group: str

    # No channel of its own (see the module's docstring): Channels then neither subscribes one
    # per socket nor waits on it. Group sends go through `self.layer`.
    channel_layer_alias = None

    # --- Connection -----------------------------------------------------------------------

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # The fan-out this socket joined (left when it closes).
        self.joined: Fanout | None = None
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Also when the consumer failed (no `disconnect` then): a closed socket never stays
            # in its group.
            self._leave()

    async def connect(self) -> None:
        self.ready = False
        # Group messages wait here until the socket is set up (then whenever a step is under
        # way); None while they are handled as they come.
        self.held: deque[Step] | None = deque()
        self.runner: asyncio.Task[None] | None = None
        self.layer = get_channel_layer()
        # The socket's name in the visitor's presence (one per tab).
        self.socket_id = uuid.uuid4().hex
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.frames = _Window(FRAMES_PER_SECOND)
        self.messages = _Window(messages_per_second())
        # Message ids this socket acknowledged, with their seqs: never pushed back to it.
        self.own: dict[str, int] = {}
        self.cursor = 0
        self.online = False
        self.typing = False
        self.ai_typing = False
        self.answering: dict[str, Any] = {}
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        claims = visitor_token_read((query.get("token") or [""])[0])
        scope_schema = self.scope.get("tenant_schema")
        if claims is None or (scope_schema and scope_schema != claims.schema):
            await self._refuse(CLOSE_BAD_TOKEN)
            return
        loaded = await _db(_load)(claims)
        context = loaded.context
        if loaded.outcome == "suspended":
            await self._refuse(CLOSE_FORBIDDEN)
            return
        if context is None:
            await self._refuse(CLOSE_BAD_TOKEN)
            return
        headers = dict(self.scope.get("headers") or [])
        origin = headers.get(b"origin", b"").decode("latin-1")
        if not origin or origin_normalise(origin) not in context.allowed_origins:
            await self._refuse(CLOSE_FORBIDDEN)
            return
        self.ctx = context
        self.group = conversation_group(context.schema, str(context.conversation_id))
        self.joined = fanout()
        if self.joined is not None:
            await self.joined.join(self.group, self)
        await self.accept()
        self.cursor = context.last_seq
        self.answering = loaded.answering
        self.ready = True
        await self._came_online()
        await self.send_json(await self._answering_frame())
        # Where both sides are, so a reloaded widget shows the right ticks and unread count.
        for who, seq in (("operator", loaded.team_read), ("visitor", loaded.visitor_read)):
            if seq:
                await self.send_json({"type": "read", "who": who, "seq": seq})
        await self._run_held()

    async def _refuse(self, code: int) -> None:
        # Accepted first: a close before the handshake completes reaches a browser as a bare
        # failure, without the code that tells the widget what went wrong.
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()
        self._leave()
        if self.runner is not None:
            self.runner.cancel()
        self.held = None
        if not getattr(self, "ready", False):
            return
        self.ready = False
        if self.typing:
            await self._broadcast_typing("stop")
        if self.online:
            await self._went_offline()

    def _leave(self) -> None:
        joined, self.joined = self.joined, None
        if joined is not None:
            joined.leave(self.group, self)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' own dispatch hops to its sync thread before every message to tidy database
        # connections this consumer never uses in its event loop; skipping it keeps the
        # socket's frames off that one shared thread.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        size = len(text_data.encode()) if text_data is not None else len(bytes_data or b"")
        if size > MAX_FRAME_BYTES:
            await self.close(code=CLOSE_TOO_LARGE)
            return
        await super().receive(text_data=text_data, bytes_data=bytes_data, **kwargs)

    # --- Frames from the visitor ----------------------------------------------------------

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not self.ready:
            return
        handlers: dict[str, Callable[[Frame], Coroutine[Any, Any, None]]] = {
            "message": self._on_message,
            "typing": self._on_typing,
            "read": self._on_read,
            "ping": self._on_ping,
            "resume": self._on_resume,
        }
        handler = handlers.get(content["type"])
        if handler is None:
            await self.send_error(
                "unknown_frame", "Frame types: message, typing, read, ping, resume."
            )
            return
        if not self.frames.allow():
            await self._rate_limited(content)
            return
        await self._in_turn(functools.partial(handler, content))

    # --- One step at a time ---------------------------------------------------------------

    async def _in_turn(self, step: Step) -> None:
        """Runs `step` now, or after the steps under way (in their task) when there are some."""
        if self.held is not None:
            self.held.append(step)
            return
        self.held = deque([step])
        await self._run_held()

    async def _run_held(self) -> None:
        """Runs what is held, oldest first, then lets group messages through as they come.
        Whatever is added meanwhile runs too: nothing is left behind when `held` goes."""
        held = self.held
        assert held is not None
        while held:
            await held.popleft()()
        self.held = None

    async def _run_held_apart(self) -> None:
        try:
            await self._run_held()
        except Exception as error:
            await self._failed(error)

    async def _failed(self, error: Exception) -> None:
        """Ends the socket as a failing consumer would (the widget reconnects and resumes from
        its seq): a push half handled must not leave it a message short."""
        # An OSError: the socket is gone already.
        if not isinstance(error, OSError):
            logger.error("visitor socket failed", exc_info=error)
        with contextlib.suppress(OSError):
            await self.close(code=1011)

    async def _rate_limited(self, frame: Frame) -> None:
        await self.send_json(
            {
                "type": "error",
                "code": "rate_limited",
                "message": "Too many frames; wait a moment and send again.",
                **_client_id_of(frame),
            }
        )

    async def _invalid(self, frame: Frame, message: str, details: dict[str, Any]) -> None:
        await self.send_json(
            {
                "type": "error",
                "code": "invalid_frame",
                "message": message,
                "details": details,
                **_client_id_of(frame),
            }
        )

    async def _on_message(self, frame: Frame) -> None:
        unknown = sorted(set(frame) - {"type", "client_id", "content"})
        client_id = frame.get("client_id")
        if unknown:
            await self._invalid(frame, "Unknown fields.", {k: ["Unknown field."] for k in unknown})
            return
        if not isinstance(client_id, str) or not 1 <= len(client_id) <= MAX_CLIENT_ID:
            await self._invalid(
                frame,
                "client_id is required.",
                {"client_id": [f"A string of 1 to {MAX_CLIENT_ID} characters."]},
            )
            return
        if not self.messages.allow():
            await self.send_json(
                {
                    "type": "error",
                    "code": "rate_limited",
                    "message": f"At most {self.messages.limit} messages a second.",
                    "client_id": client_id,
                }
            )
            return
        try:
            message_id, seq, created = await _db(self._store)(client_id, frame.get("content"))
        except InvalidContent as invalid:
            await self.send_json(
                {
                    "type": "error",
                    "code": "invalid_content",
                    "message": str(invalid.detail),
                    "details": invalid.details,
                    "client_id": client_id,
                }
            )
            return
        except DatabaseError as error:
            logger.warning("visitor message not stored", extra={"error": type(error).__name__})
            await self.send_json(
                {
                    "type": "error",
                    "code": "unavailable",
                    "message": "The message could not be stored; send it again.",
                    "client_id": client_id,
                }
            )
            return
        self.own[message_id] = seq
        await self.send_json(
            {"type": "ack", "client_id": client_id, "message_id": message_id, "seq": seq}
        )
        if created and self.answering.get("who") == "ai":
            await self._ai_typing_start()

    def _store(self, client_id: str, content: Any) -> tuple[str, int, bool]:
        with schema_context(self.ctx.schema):
            message, created = visitor_message_receive(
                conversation_id=self.ctx.conversation_id,
                contact_id=self.ctx.contact_id,
                client_id=client_id,
                content=content,
            )
            return str(message.pk), message.seq, created

    async def _on_typing(self, frame: Frame) -> None:
        state = frame.get("state")
        if state not in ("start", "stop"):
            await self._invalid(frame, "state must be start or stop.", {"state": ["Invalid."]})
            return
        if state == "start":
            self.typing = True
            self._later("typing", typing_seconds(), self._typing_expired)
            await self._broadcast_typing("start")
        else:
            self._cancel("typing")
            if self.typing:
                self.typing = False
                await self._broadcast_typing("stop")

    async def _typing_expired(self) -> None:
        # The visitor said "start" and then nothing: it stopped typing (or its tab died).
        if self.typing:
            self.typing = False
            await self._broadcast_typing("stop")

    async def _broadcast_typing(self, state: str) -> None:
        await self.layer.group_send(
            self.group,
            {
                "type": "hub.typing",
                "conversation": str(self.ctx.conversation_id),
                "who": "visitor",
                "name": self.ctx.contact_name,
                "state": state,
            },
        )

    async def _on_read(self, frame: Frame) -> None:
        message_id = frame.get("message_id")
        if not isinstance(message_id, str):
            await self._invalid(frame, "message_id is required.", {"message_id": ["Required."]})
            return
        position = await _db(self._mark_read)(message_id)
        if position is None:
            await self.send_error("not_found", "No such message in this conversation.")
            return
        if position:
            await self.layer.group_send(
                self.group,
                {
                    "type": "hub.read",
                    "conversation": str(self.ctx.conversation_id),
                    "who": "visitor",
                    "seq": position,
                },
            )

    def _mark_read(self, message_id: str) -> int | None:
        """The new read position (0 when it did not move), None for an unknown message."""
        with schema_context(self.ctx.schema):
            message = visitor_message_get(
                conversation_id=self.ctx.conversation_id, message_id=message_id
            )
            if message is None:
                return None
            position, moved = visitor_mark_read(
                conversation_id=self.ctx.conversation_id,
                contact_id=self.ctx.contact_id,
                seq=message.seq,
            )
            return position if moved else 0

    async def _on_ping(self, frame: Frame) -> None:
        await self._came_online()
        await self.send_json({"type": "pong"})

    async def _on_resume(self, frame: Frame) -> None:
        after = frame.get("after_seq")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            await self._invalid(
                frame, "after_seq must be a seq (0 or more).", {"after_seq": ["Invalid."]}
            )
            return
        await self._replay(after, include_own=True)
        await self.send_json({"type": "resumed", "last_seq": self.cursor})

    async def _replay(self, after: int, *, include_own: bool, gap_at: int = 0) -> None:
        """Every visible message after `after` from the database, in order, page by page.
        `gap_at`: the seq whose push showed a gap; the conversation's other sockets in this
        process saw the same push, and share the reads (all made after that commit)."""
        while True:
            if gap_at:
                page = await _page_shared(self.ctx.schema, self.ctx.conversation_id, after, gap_at)
            else:
                page = await _db(_page)(self.ctx.schema, self.ctx.conversation_id, after)
            for message in page.messages:
                if include_own or message["id"] not in self.own:
                    await self.send_json({"type": "message", "message": message})
                if message["sender_type"] == "ai":
                    await self._ai_typing_stop()
            self._advance(page.covered)
            if not page.more:
                return
            after = page.covered

    def _advance(self, seq: int) -> None:
        if seq > self.cursor:
            self.cursor = seq
            self.own = {key: value for key, value in self.own.items() if value > seq}

    # --- Presence -------------------------------------------------------------------------

    async def _came_online(self) -> None:
        was_offline = await presence.visitor_seen(
            schema=self.ctx.schema,
            conversation_id=str(self.ctx.conversation_id),
            socket=self.socket_id,
        )
        self._later("presence", presence.presence_seconds(), self._presence_expired)
        if was_offline or not self.online:
            self.online = True
            if was_offline:
                await self._broadcast_presence("online")

    async def _presence_expired(self) -> None:
        # No ping for the whole TTL: the tab sleeps or the network is gone.
        if self.online:
            await self._went_offline()

    async def _went_offline(self) -> None:
        self.online = False
        last = await presence.visitor_left(
            schema=self.ctx.schema,
            conversation_id=str(self.ctx.conversation_id),
            socket=self.socket_id,
        )
        if last:
            await self._broadcast_presence("offline")

    async def _broadcast_presence(self, status: str) -> None:
        await self.layer.group_send(
            self.group,
            {
                "type": "hub.presence",
                "conversation": str(self.ctx.conversation_id),
                "who": "visitor",
                "status": status,
                "name": self.ctx.contact_name,
            },
        )

    # --- Who answers: the AI or a person ---------------------------------------------------

    async def _answering_frame(self, status: str | None = None) -> Frame:
        if status is None:
            if self.answering["who"] == "ai":
                status = "online"
            elif self.answering.get("operator_id"):
                status = await presence.operator_status(
                    schema=self.ctx.schema, operator_id=self.answering["operator_id"]
                )
            else:
                status = "offline"
        return answering_frame(self.answering, status=status)

    def _answering_moved(self, payload: dict[str, Any]) -> bool:
        assignee = str(payload.get("assignee") or "") or None
        return (payload.get("ai_active"), assignee) != (
            self.answering.get("ai_active"),
            self.answering.get("operator_id"),
        )

    async def _answering_changed(self, payload: dict[str, Any]) -> None:
        if not self._answering_moved(payload):
            return
        self.answering = await _db(self._answering)()
        if self.answering["who"] != "ai":
            await self._ai_typing_stop()
        await self.send_json(await self._answering_frame())

    def _answering(self) -> dict[str, Any]:
        with schema_context(self.ctx.schema):
            return answering_get(conversation_id=self.ctx.conversation_id)

    async def _ai_typing_start(self) -> None:
        self.ai_typing = True
        self._later("ai", AI_TYPING_SECONDS, self._ai_typing_stop)
        await self._send_ai_typing("start")

    async def _ai_typing_stop(self) -> None:
        self._cancel("ai")
        if self.ai_typing:
            self.ai_typing = False
            await self._send_ai_typing("stop")

    async def _send_ai_typing(self, state: str) -> None:
        await self.send_json(
            {"type": "typing", "who": "ai", "name": self.answering.get("name", ""), "state": state}
        )

    # --- Group messages (conversations.live and the inbox), from the fan-out ---------------

    async def group_event(self, message: dict[str, Any]) -> None:
        """One message of the conversation's group; the fan-out awaits this for each socket in
        turn. The common case, the next message, is one send of a frame built once per
        process. One that needs the database (a gap to read, who answers) is handled in a task
        of this socket's own, so the conversation's other sockets do not wait for it."""
        if self.held is not None:
            self.held.append(functools.partial(self._group_message, message))
        elif not self.ready:
            return
        elif self._needs_database(message):
            self.held = deque([functools.partial(self._group_message, message)])
            self.runner = asyncio.create_task(self._run_held_apart())
        else:
            try:
                await self._group_message(message)
            except Exception as error:
                await self._failed(error)

    def stalled(self) -> None:
        """Dropped by the fan-out for not taking a message in time (a client that stopped
        reading): closed in a task of its own, as its close frame may wait as long."""
        self.joined = None
        closing = asyncio.create_task(self.close(code=CLOSE_STALLED))
        self.tasks.add(closing)
        closing.add_done_callback(self.tasks.discard)

    def _needs_database(self, message: dict[str, Any]) -> bool:
        if message["type"] != "hub.event":
            return False
        name, payload = message.get("event"), message.get("payload") or {}
        if name == "message.created":
            return int(payload.get("seq") or 0) > self.cursor + 1
        return name == "conversation.updated" and self._answering_moved(payload)

    async def _group_message(self, message: dict[str, Any]) -> None:
        # Kinds a visitor has no use for (the inbox may add some) are ignored.
        kind = message["type"]
        if kind == "hub.event":
            await self.hub_event(message)
        elif kind == "hub.typing":
            await self.hub_typing(message)
        elif kind == "hub.read":
            await self.hub_read(message)
        elif kind == "hub.presence":
            await self.hub_presence(message)

    async def hub_event(self, event: dict[str, Any]) -> None:
        name, payload = event.get("event"), event.get("payload") or {}
        if name == "message.created":
            await self._message_created(payload)
        elif name == "message.updated":
            # What the visitor sees change: a message deleted or edited. (Status moves are the
            # team's business.) One it does not have yet comes whole with its own push.
            content = payload.get("content") or {}
            changed = payload.get("deleted_at") or content.get("edited")
            if changed and not payload.get("is_private") and payload.get("seq", 0) <= self.cursor:
                await self.send_json(
                    {"type": "message", "message": visitor_message(payload, schema=self.ctx.schema)}
                )
        elif name == "conversation.updated":
            await self._answering_changed(payload)

    async def _message_created(self, payload: dict[str, Any]) -> None:
        seq = int(payload.get("seq") or 0)
        if seq <= self.cursor:
            return
        if seq > self.cursor + 1:
            await self._replay(self.cursor, include_own=False, gap_at=seq)
            return
        hidden = payload.get("is_private") or str(payload.get("id")) in self.own
        self._advance(seq)
        if hidden:
            return
        if payload.get("sender_type") == "ai":
            await self._ai_typing_stop()
        await self.send(text_data=new_message_frame(payload, schema=self.ctx.schema))

    async def hub_typing(self, event: dict[str, Any]) -> None:
        who = event.get("who")
        if who == "visitor":
            return
        state = "start" if event.get("state") == "start" else "stop"
        frame = {"type": "typing", "who": who, "name": event.get("name", ""), "state": state}
        key = f"typing:{who}"
        if state == "start":
            # A sender that vanishes mid-word must not leave "typing…" on screen.
            stop = {**frame, "state": "stop"}
            self._later(key, typing_seconds(), lambda: self.send_json(stop))
        else:
            self._cancel(key)
        await self.send_json(frame)

    async def hub_read(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "read", "who": event.get("who"), "seq": event.get("seq")})

    async def hub_presence(self, event: dict[str, Any]) -> None:
        # The visitor hears about the person answering it, not about colleagues looking in.
        if (
            event.get("who") == "operator"
            and self.answering.get("who") == "operator"
            and event.get("name") == self.answering.get("name")
        ):
            status = event.get("status")
            await self.send_json(
                await self._answering_frame(status if status in ("online", "away") else "offline")
            )

    # --- Timers ----------------------------------------------------------------------------

    def _later(
        self, key: str, delay: float, action: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        self._cancel(key)

        def fire() -> None:
            self.timers.pop(key, None)
            task = asyncio.ensure_future(action())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        self.timers[key] = asyncio.get_running_loop().call_later(delay, fire)

    def _cancel(self, key: str) -> None:
        handle = self.timers.pop(key, None)
        if handle is not None:
            handle.cancel()


# Gap reads under way, by event loop, schema, conversation, seq read after and seq of the push
# that showed the gap: a push that comes out of order shows every socket of its conversation in
# this process the same gap, and one read serves them all. Keyed by the push too: a read begun
# before a push came could miss its message.
_pages: dict[tuple[Any, ...], asyncio.Task[ReplayPage]] = {}


async def _page_shared(
    schema: str, conversation_id: uuid.UUID, after: int, gap_at: int
) -> ReplayPage:
    key = (asyncio.get_running_loop(), schema, conversation_id, after, gap_at)
    read = _pages.get(key)
    if read is None:
        read = asyncio.ensure_future(_db(_page)(schema, conversation_id, after))
        _pages[key] = read

        def done(task: asyncio.Task[ReplayPage]) -> None:
            if _pages.get(key) is task:
                del _pages[key]

        read.add_done_callback(done)
    # Shielded: a socket that closes while waiting does not cancel the others' read.
    return await asyncio.shield(read)


def _page(schema: str, conversation_id: uuid.UUID, after: int) -> ReplayPage:
    with schema_context(schema):
        return visitor_messages_after(
            schema=schema, conversation_id=conversation_id, after_seq=after
        )


def _client_id_of(frame: Frame) -> dict[str, str]:
    client_id = frame.get("client_id")
    return {"client_id": client_id} if isinstance(client_id, str) else {}
