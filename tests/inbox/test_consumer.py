"""The inbox socket through the real ASGI server (uvicorn) with a real WebSocket client, real
sessions in each tenant's schema and the Redis channel layer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import websockets
from channels.layers import get_channel_layer
from django.db import connections
from django_tenants.utils import schema_context
from websockets.exceptions import ConnectionClosed

from conversations.live import conversation_group
from conversations.models import Conversation, Message, Operator, Participant
from conversations.services.messages import message_receive
from hub.redis import get_redis
from inbox.presence import operator_key
from inbox.services import notification_create
from tests.conftest import TenantInfo
from tests.inbox.conftest import Committed, Seat

Frame = dict[str, Any]


def _ws(server: str, tenant: TenantInfo) -> str:
    return f"{server.replace('http://', 'ws://')}/t/{tenant.slug}/ws/inbox/"


class Socket:
    """A connected inbox socket that keeps every frame it received, in order."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.frames: list[Frame] = []

    async def send(self, frame: Frame) -> None:
        await self.connection.send(json.dumps(frame))

    async def wait_for(self, match: Callable[[Frame], bool], timeout: float = 10) -> Frame:
        for frame in self.frames:
            if match(frame):
                self.frames.remove(frame)
                return frame
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching frame in {timeout}s; got {self.frames}")
            try:
                frame = json.loads(await asyncio.wait_for(self.connection.recv(), left))
            except TimeoutError:
                continue
            if match(frame):
                return frame
            self.frames.append(frame)

    async def quiet_for(self, seconds: float) -> list[Frame]:
        """Every frame that arrives in the next `seconds`."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                self.frames.append(json.loads(await asyncio.wait_for(self.connection.recv(), left)))
            except TimeoutError:
                break
        return self.frames

    async def request(self, frame: Frame, ref: str) -> Frame:
        await self.send({**frame, "ref": ref})
        return await self.wait_for(lambda f: f.get("ref") == ref)


async def _open(url: str, seat: Seat | None = None, **headers: str) -> Socket:
    connection = await websockets.connect(
        url, additional_headers={**(seat.cookie if seat else {}), **headers}
    )
    socket = Socket(connection)
    await socket.wait_for(lambda f: f["type"] == "ready")
    return socket


async def _close_code(url: str, headers: dict[str, str] | None = None) -> int | None:
    try:
        async with websockets.connect(url, additional_headers=headers or {}) as connection:
            while True:
                await asyncio.wait_for(connection.recv(), 10)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    except websockets.InvalidStatus as refused:
        return refused.response.status_code


async def _in_thread(write: Callable[[], None]) -> None:
    """Writes from a thread (the socket's event loop keeps running), closing its connection so
    the test database can be dropped at the end."""

    def run() -> None:
        try:
            write()
        finally:
            connections.close_all()

    await asyncio.to_thread(run)


def _event(name: str, **fields: Any) -> Callable[[Frame], bool]:
    def match(frame: Frame) -> bool:
        if frame.get("type") != "event" or frame.get("event") != name:
            return False
        return all(frame["payload"].get(key) == value for key, value in fields.items())

    return match


async def _listen(schema: str, conversation_id: str) -> tuple[Any, str]:
    """A bare channel in the conversation's group: what a visitor's socket would hear."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(conversation_group(schema, conversation_id), channel)
    return layer, channel


async def _heard(layer: Any, channel: str, match: Callable[[Frame], bool]) -> Frame:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = await asyncio.wait_for(layer.receive(channel), 10)
        if match(message):
            return message
    raise AssertionError("nothing matching reached the conversation group")


# --- Who may connect ---------------------------------------------------------------------------


def test_sockets_without_a_valid_operator_session_are_closed(
    committed: Committed, inbox_server: str
) -> None:
    a, b = committed.a, committed.b
    operator_a = committed.seat(a, "Ada")
    customer = committed.seat(a, "Not staff", operator=False, staff=False)
    url_a, url_b = _ws(inbox_server, a), _ws(inbox_server, b)

    async def codes() -> list[int | None]:
        return [
            await _close_code(url_a),
            await _close_code(url_a, {"Cookie": "sessionid=not-a-session"}),
            await _close_code(url_a, customer.cookie),
            # Tenant A's session on tenant B's socket: B's schema has no such session.
            await _close_code(url_b, operator_a.cookie),
            # A page of another site using the operator's cookies.
            await _close_code(url_a, {**operator_a.cookie, "Origin": "https://evil.test"}),
        ]

    assert asyncio.run(codes()) == [4401, 4401, 4403, 4401, 4403]


def test_the_tenant_comes_from_the_path_or_the_query(
    committed: Committed, inbox_server: str
) -> None:
    a = committed.a
    seat = committed.seat(a, "Ada")
    ws = inbox_server.replace("http://", "ws://")

    async def run() -> tuple[Frame, int | None, int | None]:
        socket = await _open(f"{ws}/ws/inbox/?tenant={a.slug}", seat)
        pong = await socket.request({"type": "ping"}, "p")
        await socket.connection.close()
        return (
            pong,
            await _close_code(f"{ws}/ws/inbox/?tenant=nobody_here", seat.cookie),
            await _close_code(f"{ws}/ws/inbox/", seat.cookie),
        )

    pong, unknown, missing = asyncio.run(run())
    assert pong["type"] == "pong"
    assert unknown == 4404
    # No tenant at all (platform host, no query): refused by the tenant routing.
    assert missing in {4404, 403}


def test_connecting_marks_the_operator_present(committed: Committed, inbox_server: str) -> None:
    a = committed.a
    seat = committed.seat(a, "Ada")

    async def run() -> None:
        socket = await _open(_ws(inbox_server, a), seat)
        await socket.send({"type": "ping"})
        await socket.wait_for(lambda f: f["type"] == "pong")
        await socket.connection.close()

    asyncio.run(run())
    assert get_redis().get(operator_key(a.slug, seat.operator)) == b"online"
    assert 0 < get_redis().ttl(operator_key(a.slug, seat.operator)) <= 30
    with schema_context(a.slug):
        assert Operator.objects.get(pk=seat.operator).availability == "online"


# --- Live updates ----------------------------------------------------------------------------


def test_a_new_inbound_message_reaches_the_list_live(
    committed: Committed, inbox_server: str
) -> None:
    a = committed.a
    seat = committed.seat(a, "Ada")
    conversation = committed.conversation(a, text=None)

    async def run() -> Frame:
        socket = await _open(_ws(inbox_server, a), seat)

        def receive() -> None:
            with schema_context(a.slug):
                message_receive(
                    conversation=conversation,
                    contact=conversation.contact,
                    content={"type": "text", "text": "Is anyone there?"},
                )

        await _in_thread(receive)
        created = await socket.wait_for(
            _event("message.created", conversation=str(conversation.pk))
        )
        await socket.connection.close()
        return created

    created = asyncio.run(run())
    assert created["payload"]["content"] == {"type": "text", "text": "Is anyone there?"}
    assert created["payload"]["direction"] == "in"


def test_a_reply_is_stored_and_pushed_to_the_conversation(
    committed: Committed, inbox_server: str
) -> None:
    a = committed.a
    seat = committed.seat(a, "Ada")
    conversation = committed.conversation(a)

    async def run() -> tuple[Frame, Frame, Frame, Frame]:
        socket = await _open(_ws(inbox_server, a), seat)
        layer, channel = await _listen(a.slug, str(conversation.pk))
        frame = {
            "type": "reply",
            "conversation": str(conversation.pk),
            "text": "Happy to help!",
            "client_id": "reply-1",
        }
        ack = await socket.request(frame, "r1")
        event = await socket.wait_for(_event("message.created", id=ack["message_id"]))
        pushed = await _heard(
            layer,
            channel,
            lambda m: (
                m.get("event") == "message.created" and m["payload"]["id"] == ack["message_id"]
            ),
        )
        again = await socket.request(frame, "r2")
        await socket.connection.close()
        return ack, event, pushed, again

    ack, event, pushed, again = asyncio.run(run())
    assert ack["type"] == "ack"
    assert ack["created"] is True
    assert ack["seq"] == 2
    assert again["message_id"] == ack["message_id"]
    assert again["created"] is False
    assert event["payload"]["sender"] == {"type": "operator", "id": seat.operator_id, "name": "Ada"}
    assert pushed["payload"]["content"] == {"type": "text", "text": "Happy to help!"}
    with schema_context(a.slug):
        message = Message.objects.get(pk=ack["message_id"])
        state = Conversation.objects.get(pk=conversation.pk)
        position = Participant.objects.get(conversation=conversation, operator_id=seat.operator)
    assert (message.sender_type, str(message.sender_operator_id)) == ("operator", seat.operator_id)
    assert (state.ai_active, str(state.assignee_id)) == (False, seat.operator_id)
    assert position.last_read_seq == 2


def test_take_over_and_hand_back(committed: Committed, inbox_server: str) -> None:
    a = committed.a
    seat = committed.seat(a, "Ada")
    watcher = committed.seat(a, "Grace")
    conversation = committed.conversation(a)
    target = str(conversation.pk)

    async def run() -> tuple[Frame, Frame, Frame, Frame]:
        socket = await _open(_ws(inbox_server, a), seat)
        other = await _open(_ws(inbox_server, a), watcher)
        took = await socket.request(
            {"type": "action", "conversation": target, "action": "take_over"}, "t"
        )
        seen_taken = await other.wait_for(
            _event("conversation.updated", id=target, ai_active=False)
        )
        back = await socket.request(
            {"type": "action", "conversation": target, "action": "hand_back"}, "h"
        )
        seen_back = await other.wait_for(_event("conversation.updated", id=target, ai_active=True))
        for s in (socket, other):
            await s.connection.close()
        return took, seen_taken, back, seen_back

    took, seen_taken, back, seen_back = asyncio.run(run())
    assert (took["ai_active"], took["assignee"], took["status"]) == (
        False,
        seat.operator_id,
        "open",
    )
    assert seen_taken["payload"]["assignee"] == seat.operator_id
    assert back["ai_active"] is True
    assert seen_back["payload"]["ai_active"] is True
    with schema_context(a.slug):
        assert Conversation.objects.get(pk=target).ai_active is True


def test_typing_both_ways(committed: Committed, inbox_server: str) -> None:
    a = committed.a
    seat = committed.seat(a, "Ada")
    conversation = committed.conversation(a)
    target = str(conversation.pk)

    async def run() -> tuple[Frame, Frame, Frame, list[Frame]]:
        socket = await _open(_ws(inbox_server, a), seat)
        not_open = await socket.request(
            {"type": "typing", "conversation": target, "state": "start"}, "early"
        )
        await socket.request({"type": "open", "conversation": target}, "o")
        layer, channel = await _listen(a.slug, target)
        # The visitor types: the operator sees it.
        await layer.group_send(
            conversation_group(a.slug, target),
            {
                "type": "hub.typing",
                "conversation": target,
                "who": "visitor",
                "name": "",
                "state": "start",
                "sender_channel": "visitor-socket",
            },
        )
        visitor_typing = await socket.wait_for(lambda f: f["type"] == "typing")
        # The operator types: the conversation (the visitor's socket) hears it.
        await socket.send({"type": "typing", "conversation": target, "state": "start"})
        operator_typing = await _heard(
            layer, channel, lambda m: m["type"] == "hub.typing" and m["who"] == "operator"
        )
        echoed = await socket.quiet_for(1.0)
        await socket.connection.close()
        return not_open, visitor_typing, operator_typing, echoed

    not_open, visitor_typing, operator_typing, echoed = asyncio.run(run())
    assert not_open["type"] == "error"
    assert not_open["code"] == "not_open"
    assert visitor_typing == {
        "type": "typing",
        "conversation": target,
        "who": "visitor",
        "name": "",
        "state": "start",
    }
    assert operator_typing["name"] == "Ada"
    assert operator_typing["state"] == "start"
    assert operator_typing["conversation"] == target
    # The operator's own typing is not sent back to them.
    assert not [f for f in echoed if f["type"] == "typing"]


def test_read_position_is_stored_and_broadcast(committed: Committed, inbox_server: str) -> None:
    a = committed.a
    seat = committed.seat(a, "Ada")
    conversation = committed.conversation(a)
    target = str(conversation.pk)

    async def run() -> tuple[Frame, Frame]:
        socket = await _open(_ws(inbox_server, a), seat)
        layer, channel = await _listen(a.slug, target)
        ack = await socket.request({"type": "read", "conversation": target, "seq": 99}, "r")
        heard = await _heard(layer, channel, lambda m: m["type"] == "hub.read")
        await socket.connection.close()
        return ack, heard

    ack, heard = asyncio.run(run())
    # Never past the newest message.
    assert ack["seq"] == 1
    assert (heard["who"], heard["seq"]) == ("operator", 1)
    with schema_context(a.slug):
        participant = Participant.objects.get(conversation_id=target, operator_id=seat.operator)
    assert participant.last_read_seq == 1


def test_notifications_arrive_live_for_their_operators(
    committed: Committed, inbox_server: str
) -> None:
    a = committed.a
    ada = committed.seat(a, "Ada")
    grace = committed.seat(a, "Grace")
    conversation = committed.conversation(a)

    async def run() -> tuple[Frame, list[Frame]]:
        socket = await _open(_ws(inbox_server, a), ada)

        def notify() -> None:
            with schema_context(a.slug):
                notification_create(
                    kind="handoff", title="For Grace", operator_id=grace.operator_id
                )
                notification_create(
                    kind="handoff",
                    title="A customer asks for a human",
                    conversation_id=conversation.pk,
                )

        await _in_thread(notify)
        team = await socket.wait_for(_event("notification.created", kind="handoff"))
        rest = await socket.quiet_for(1.0)
        await socket.connection.close()
        return team, rest

    team, rest = asyncio.run(run())
    assert team["payload"]["title"] == "A customer asks for a human"
    assert team["payload"]["conversation"] == str(conversation.pk)
    assert not [f for f in rest if f.get("event") == "notification.created"]


def test_availability_is_stored_in_presence_and_pushed(
    committed: Committed, inbox_server: str
) -> None:
    a = committed.a
    ada = committed.seat(a, "Ada")
    grace = committed.seat(a, "Grace")

    async def run() -> tuple[Frame, Frame, Frame]:
        socket = await _open(_ws(inbox_server, a), ada)
        other = await _open(_ws(inbox_server, a), grace)
        ack = await socket.request({"type": "availability", "status": "away"}, "a")
        pushed = await other.wait_for(_event("operator.updated", id=ada.operator_id))
        bad = await socket.request({"type": "availability", "status": "asleep"}, "b")
        for s in (socket, other):
            await s.connection.close()
        return ack, pushed, bad

    ack, pushed, bad = asyncio.run(run())
    assert ack["availability"] == "away"
    assert pushed["payload"]["availability"] == "away"
    assert bad["code"] == "validation_error"
    assert get_redis().get(operator_key(a.slug, ada.operator)) == b"away"
    with schema_context(a.slug):
        assert Operator.objects.get(pk=ada.operator).availability == "away"


# --- Bad frames -------------------------------------------------------------------------------


def test_bad_frames_get_an_error_and_the_socket_stays(
    committed: Committed, inbox_server: str
) -> None:
    a = committed.a
    seat = committed.seat(a, "Ada")
    conversation = committed.conversation(a)
    target = str(conversation.pk)
    cases: list[tuple[Frame, str]] = [
        ({"type": "dance"}, "unknown_frame"),
        ({"type": "reply", "conversation": "nope", "text": "hi"}, "invalid_frame"),
        ({"type": "reply", "conversation": target, "text": ""}, "validation_error"),
        ({"type": "reply", "conversation": target, "text": 5}, "invalid_frame"),
        (
            {"type": "reply", "conversation": target, "text": "hi", "private": "yes"},
            "invalid_frame",
        ),
        ({"type": "action", "conversation": target, "action": "explode"}, "invalid_action"),
        ({"type": "read", "conversation": target, "seq": -1}, "invalid_frame"),
        ({"type": "open", "conversation": "00000000-0000-0000-0000-000000000000"}, "not_found"),
    ]

    async def run() -> tuple[list[Frame], Frame]:
        socket = await _open(_ws(inbox_server, a), seat)
        errors = [await socket.request(frame, str(i)) for i, (frame, _) in enumerate(cases)]
        await socket.connection.send("not json")
        invalid = await socket.wait_for(lambda f: f["type"] == "error")
        await socket.send({"type": "ping"})
        await socket.wait_for(lambda f: f["type"] == "pong")
        await socket.connection.close()
        return errors, invalid

    errors, invalid = asyncio.run(run())
    assert [e["code"] for e in errors] == [code for _, code in cases]
    assert invalid["code"] == "invalid_json"
    with schema_context(a.slug):
        assert Message.objects.filter(conversation=conversation).count() == 1


def test_oversized_frames_close_and_floods_are_rate_limited(
    committed: Committed, inbox_server: str
) -> None:
    a = committed.a
    seat = committed.seat(a, "Ada")

    async def run() -> tuple[list[Frame], int | None]:
        socket = await _open(_ws(inbox_server, a), seat)
        for _ in range(80):
            await socket.send({"type": "dance"})
        frames = await socket.quiet_for(1.0)
        await socket.connection.send(json.dumps({"type": "ping", "pad": "x" * 70_000}))
        try:
            await asyncio.wait_for(socket.connection.recv(), 10)
        except ConnectionClosed as closed:
            return frames, closed.rcvd.code if closed.rcvd else None
        return frames, None

    frames, code = asyncio.run(run())
    assert any(f.get("code") == "rate_limited" for f in frames)
    assert code == 1009


# --- Tenant isolation ---------------------------------------------------------------------------


def test_two_tenants_inbox_sockets_never_see_each_others_events(
    committed: Committed, inbox_server: str
) -> None:
    a, b = committed.a, committed.b
    seat_a, seat_b = committed.seat(a, "Ada"), committed.seat(b, "Bob")
    in_a = committed.conversation(a, text=None)
    in_b = committed.conversation(b, text=None)

    async def run() -> tuple[list[Frame], list[Frame], list[Frame]]:
        socket_a = await _open(_ws(inbox_server, a), seat_a)
        socket_b = await _open(_ws(inbox_server, b), seat_b)

        def write() -> None:
            for info, conversation in ((a, in_a), (b, in_b)):
                with schema_context(info.slug):
                    message_receive(
                        conversation=conversation,
                        contact=conversation.contact,
                        content={"type": "text", "text": f"secret of {info.slug}"},
                    )
                    notification_create(kind="low_credits", title=f"low in {info.slug}")

        await _in_thread(write)
        await socket_a.wait_for(_event("message.created", conversation=str(in_a.pk)))
        await socket_b.wait_for(_event("message.created", conversation=str(in_b.pk)))
        # B's operator cannot reach A's conversation through its own socket.
        refused = [
            await socket_b.request({"type": "open", "conversation": str(in_a.pk)}, "o"),
            await socket_b.request(
                {"type": "reply", "conversation": str(in_a.pk), "text": "hi"}, "r"
            ),
            await socket_b.request(
                {"type": "action", "conversation": str(in_a.pk), "action": "take_over"}, "t"
            ),
        ]
        seen_a = await socket_a.quiet_for(1.5)
        seen_b = await socket_b.quiet_for(0.1)
        for s in (socket_a, socket_b):
            await s.connection.close()
        return seen_a, seen_b, refused

    seen_a, seen_b, refused = asyncio.run(run())
    text = json.dumps(seen_a)
    assert str(in_b.pk) not in text
    assert f"secret of {b.slug}" not in text
    assert f"low in {b.slug}" not in text
    text = json.dumps(seen_b)
    assert str(in_a.pk) not in text
    assert f"secret of {a.slug}" not in text
    assert f"low in {a.slug}" not in text
    assert [r["code"] for r in refused] == ["not_found"] * 3
    with schema_context(a.slug):
        assert Message.objects.filter(conversation=in_a).count() == 1
        assert Conversation.objects.get(pk=in_a.pk).ai_active is True
