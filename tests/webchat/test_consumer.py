"""The visitor's socket through Channels' WebsocketCommunicator (the whole ASGI stack, in this
process), on committed rows: the consumer reads in worker threads of its own."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.test import Client
from django_tenants.utils import schema_context

from conversations.live import conversation_group
from conversations.models import Conversation, Message, Participant
from conversations.services.conversations import conversation_update
from conversations.services.messages import message_send
from hub.asgi import application
from hub.redis import get_redis
from tests.factories import AgentFactory, OperatorFactory
from tests.webchat.conftest import ORIGIN, Chat, Frames, WebsocketCommunicator, of_type
from webchat.presence import visitor_key
from webchat.tokens import visitor_token_read


def _session(chat: Chat) -> dict[str, Any]:
    response = chat.session(Client(REMOTE_ADDR=f"198.51.100.{uuid.uuid4().int % 250}"))
    assert response.status_code == 200, response.content
    return response.json()


@asynccontextmanager
async def _socket(
    token: str | None, *, origin: str | None = ORIGIN
) -> AsyncIterator[tuple[WebsocketCommunicator, Frames]]:
    path = "/ws/webchat/" if token is None else f"/ws/webchat/?token={token}"
    headers = [(b"host", b"testserver")]
    if origin:
        headers.append((b"origin", origin.encode()))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    frames = Frames(communicator.receive_from)
    try:
        yield communicator, frames
    finally:
        await communicator.disconnect()


async def _close_code(token: str | None, *, origin: str | None = ORIGIN) -> int | None:
    async with _socket(token, origin=origin) as (communicator, _):
        output = await communicator.receive_output(timeout=10)
        return output.get("code") if output["type"] == "websocket.close" else None


@asynccontextmanager
async def _listener(chat: Chat, conversation_id: str) -> AsyncIterator[Any]:
    """A channel in the conversation's group, as the operator inbox would be."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    group = conversation_group(chat.slug, conversation_id)
    await layer.group_add(group, channel)

    async def receive(kinds: tuple[str, ...], timeout: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message = await layer.receive(channel)
                if message["type"] in kinds:
                    return message

    try:
        yield receive
    finally:
        await layer.group_discard(group, channel)


def _send(chat: Chat, conversation_id: str, text: str, **kwargs: Any) -> Message:
    with schema_context(chat.slug):
        conversation = Conversation.objects.get(pk=conversation_id)
        message, _ = message_send(
            conversation=conversation,
            content={"type": "text", "text": text},
            sender_type=kwargs.pop("sender_type", "operator"),
            **kwargs,
        )
        return message


def _text(frame: dict[str, Any]) -> str:
    return frame["message"]["content"]["text"]


# --- Handshake ------------------------------------------------------------------------------


def test_a_missing_forged_or_dead_token_closes_4401(live_chats: dict[str, Chat]) -> None:
    chat = live_chats["a"]
    session = _session(chat)
    token = session["visitor_token"]
    assert asyncio.run(_close_code(None)) == 4401
    assert asyncio.run(_close_code("nonsense")) == 4401
    assert asyncio.run(_close_code(token[:-2] + "xx")) == 4401
    # A genuine token whose visitor was erased (its identity is gone) is dead as well.
    claims = visitor_token_read(token)
    assert claims is not None
    with schema_context(chat.slug):
        Conversation.objects.get(pk=claims.conversation_id).contact.identities.all().delete()
    assert asyncio.run(_close_code(token)) == 4401


def test_a_disabled_channel_closes_4401(live_chats: dict[str, Chat]) -> None:
    chat = live_chats["a"]
    token = _session(chat)["visitor_token"]
    with schema_context(chat.slug):
        type(chat.channel()).objects.filter(pk=chat.channel_id).update(enabled=False)
    assert asyncio.run(_close_code(token)) == 4401


@pytest.mark.parametrize("origin", [None, "https://evil.example"])
def test_an_origin_outside_the_channels_list_closes_4403(
    live_chats: dict[str, Chat], origin: str | None
) -> None:
    token = _session(live_chats["a"])["visitor_token"]
    assert asyncio.run(_close_code(token, origin=origin)) == 4403


def test_an_allowed_socket_hears_who_answers_first(live_chats: dict[str, Chat]) -> None:
    chat = live_chats["a"]
    token = _session(chat)["visitor_token"]

    async def scenario() -> dict[str, Any]:
        async with _socket(token) as (_, frames):
            return await frames.next()

    assert asyncio.run(scenario()) == {
        "type": "presence",
        "who": "operator",
        "name": "",
        "status": "offline",
        "answering": True,
    }


# --- Messages -------------------------------------------------------------------------------


def test_a_message_is_stored_once_per_client_id_and_acknowledged(
    live_chats: dict[str, Chat],
) -> None:
    chat = live_chats["a"]
    session = _session(chat)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with _socket(session["visitor_token"]) as (communicator, frames):
            frame = {
                "type": "message",
                "client_id": "c-1",
                "content": {"type": "text", "text": "Hi"},
            }
            await communicator.send_json_to(frame)
            first = await frames.until(of_type("ack"))
            await communicator.send_json_to(frame)
            second = await frames.until(of_type("ack"))
            # The visitor's own message is acknowledged, never echoed back.
            assert not [f for f in await frames.quiet(0.5) if f["type"] == "message"]
            return first, second

    first, second = asyncio.run(scenario())
    assert first == second
    assert (first["client_id"], first["seq"]) == ("c-1", 1)
    with schema_context(chat.slug):
        (message,) = Message.objects.filter(conversation_id=session["conversation_id"])
        assert str(message.pk) == first["message_id"]
        assert (message.direction, message.sender_type, message.client_id) == (
            "in",
            "contact",
            "c-1",
        )
        assert message.content == {"type": "text", "text": "Hi"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_json"),
        (json.dumps({"type": "dance"}), "unknown_frame"),
        (
            json.dumps({"type": "message", "content": {"type": "text", "text": "x"}}),
            "invalid_frame",
        ),
        (
            json.dumps({"type": "message", "client_id": "x", "content": {"type": "text"}}),
            "invalid_content",
        ),
        (
            json.dumps(
                {
                    "type": "message",
                    "client_id": "x",
                    "content": {"type": "video", "url": "http://a"},
                }
            ),
            "invalid_content",
        ),
        (
            json.dumps(
                {
                    "type": "message",
                    "client_id": "x",
                    "content": {"type": "image", "url": "https://tracker.example/p.png"},
                }
            ),
            "invalid_content",
        ),
        (
            json.dumps(
                {
                    "type": "message",
                    "client_id": "x",
                    "content": {
                        "type": "image",
                        "attachment_id": "00000000-0000-4000-8000-000000000002",
                    },
                }
            ),
            "invalid_content",
        ),
        (json.dumps({"type": "typing", "state": "maybe"}), "invalid_frame"),
        (json.dumps({"type": "resume", "after_seq": -1}), "invalid_frame"),
        (json.dumps({"type": "resume", "after_seq": "3"}), "invalid_frame"),
        (
            json.dumps({"type": "read", "message_id": "00000000-0000-4000-8000-000000000001"}),
            "not_found",
        ),
    ],
)
def test_a_bad_frame_gets_an_error_and_the_socket_stays(
    live_chats: dict[str, Chat], frame: str, code: str
) -> None:
    chat = live_chats["a"]
    session = _session(chat)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with _socket(session["visitor_token"]) as (communicator, frames):
            await communicator.send_to(text_data=frame)
            error = await frames.until(of_type("error"))
            await communicator.send_json_to({"type": "ping"})
            return error, await frames.until(of_type("pong"))

    error, _pong = asyncio.run(scenario())
    assert error["code"] == code
    assert error["message"]
    with schema_context(chat.slug):
        assert not Message.objects.filter(conversation_id=session["conversation_id"]).exists()


def test_a_frame_over_64_kib_closes_1009(live_chats: dict[str, Chat]) -> None:
    token = _session(live_chats["a"])["visitor_token"]

    async def scenario() -> int:
        async with _socket(token) as (communicator, frames):
            await frames.next()
            text = "x" * (64 * 1024)
            await communicator.send_json_to(
                {"type": "message", "client_id": "big", "content": {"type": "text", "text": text}}
            )
            while True:
                output = await communicator.receive_output(timeout=10)
                if output["type"] == "websocket.close":
                    return output["code"]

    assert asyncio.run(scenario()) == 1009


def test_more_than_ten_messages_a_second_are_refused(
    live_chats: dict[str, Chat], monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = live_chats["a"]
    session = _session(chat)
    # The burst arrives within one instant, however long each message takes to store here.
    monkeypatch.setattr("webchat.consumers.monotonic", lambda: 1000.0)

    async def scenario() -> list[dict[str, Any]]:
        async with _socket(session["visitor_token"]) as (communicator, frames):
            for index in range(12):
                await communicator.send_json_to(
                    {
                        "type": "message",
                        "client_id": f"burst-{index}",
                        "content": {"type": "text", "text": str(index)},
                    }
                )
            replies: list[dict[str, Any]] = []
            while len(replies) < 12:
                frame = await frames.next(10)
                if frame["type"] in ("ack", "error"):
                    replies.append(frame)
            return replies

    replies = asyncio.run(scenario())
    limited = [r for r in replies if r["type"] == "error"]
    assert len([r for r in replies if r["type"] == "ack"]) == 10
    assert {r["code"] for r in limited} == {"rate_limited"}
    assert {r["client_id"] for r in limited} == {"burst-10", "burst-11"}
    with schema_context(chat.slug):
        assert Message.objects.filter(conversation_id=session["conversation_id"]).count() == 10


def test_the_teams_messages_are_pushed_but_never_private_notes(
    live_chats: dict[str, Chat],
) -> None:
    chat = live_chats["a"]
    session = _session(chat)
    operator = None
    with schema_context(chat.slug):
        operator = OperatorFactory.create(display_name="Anna")

    async def scenario() -> list[dict[str, Any]]:
        async with _socket(session["visitor_token"]) as (_, frames):
            await frames.next()
            await asyncio.to_thread(
                _send,
                chat,
                session["conversation_id"],
                "internal",
                sender_operator=operator,
                is_private=True,
            )
            await asyncio.to_thread(
                _send, chat, session["conversation_id"], "Hello from Anna", sender_operator=operator
            )
            await asyncio.to_thread(
                _send, chat, session["conversation_id"], "And the AI", sender_type="ai"
            )
            await frames.until(lambda f: f.get("type") == "message" and _text(f) == "And the AI")
            return [f for f in frames.seen if f["type"] == "message"]

    try:
        pushed = asyncio.run(scenario())
    finally:
        with schema_context(chat.slug):
            Message.objects.filter(conversation_id=session["conversation_id"]).delete()
            operator.user.delete()
    assert [_text(f) for f in pushed] == ["Hello from Anna", "And the AI"]
    anna, ai = (f["message"] for f in pushed)
    assert (anna["sender_type"], anna["sender_name"], anna["seq"]) == ("operator", "Anna", 2)
    assert (ai["sender_type"], ai["sender_name"], ai["seq"]) == ("ai", "", 3)
    # The team's details stay with the team.
    assert "provider_message_id" not in anna
    assert "is_private" not in anna


# --- Typing, presence, read receipts ---------------------------------------------------------


def test_typing_is_broadcast_and_expires_by_itself(live_chats: dict[str, Chat], settings) -> None:
    settings.HUB_WEBCHAT_TYPING_SECONDS = 0.5
    chat = live_chats["a"]
    session = _session(chat)
    conversation_id = session["conversation_id"]

    async def scenario() -> tuple[list[str], list[dict[str, Any]]]:
        async with (
            _listener(chat, conversation_id) as team,
            _socket(session["visitor_token"]) as (communicator, frames),
        ):
            await frames.next()
            await communicator.send_json_to({"type": "typing", "state": "start"})
            started = await team(("hub.typing",))
            # No "stop" from the visitor: the socket stops it after the window.
            stopped = await team(("hub.typing",), timeout=3)
            layer = get_channel_layer()
            await layer.group_send(
                conversation_group(chat.slug, conversation_id),
                {
                    "type": "hub.typing",
                    "conversation": conversation_id,
                    "who": "operator",
                    "name": "Anna",
                    "state": "start",
                    "sender_channel": "inbox-socket",
                },
            )
            shown = await frames.until(of_type("typing"))
            hidden = await frames.until(of_type("typing"), timeout=3)
            return [started["state"], stopped["state"], started["who"]], [shown, hidden]

    team_saw, visitor_saw = asyncio.run(scenario())
    assert team_saw == ["start", "stop", "visitor"]
    assert visitor_saw == [
        {"type": "typing", "who": "operator", "name": "Anna", "state": "start"},
        {"type": "typing", "who": "operator", "name": "Anna", "state": "stop"},
    ]


def test_presence_goes_offline_without_pings_and_back_with_one(
    live_chats: dict[str, Chat], settings
) -> None:
    settings.HUB_WEBCHAT_PRESENCE_SECONDS = 1
    chat = live_chats["a"]
    session = _session(chat)
    conversation_id = session["conversation_id"]
    key = visitor_key(chat.slug, conversation_id)

    async def scenario() -> list[tuple[str, bool]]:
        seen = []
        async with _listener(chat, conversation_id) as team:
            async with _socket(session["visitor_token"]) as (communicator, frames):
                event = await team(("hub.presence",))
                seen.append((event["status"], bool(get_redis().exists(key))))
                event = await team(("hub.presence",), timeout=4)
                seen.append((event["status"], bool(get_redis().exists(key))))
                await communicator.send_json_to({"type": "ping"})
                await frames.until(of_type("pong"))
                event = await team(("hub.presence",))
                seen.append((event["status"], bool(get_redis().exists(key))))
            event = await team(("hub.presence",))
            seen.append((event["status"], bool(get_redis().exists(key))))
        return seen

    assert asyncio.run(scenario()) == [
        ("online", True),
        ("offline", False),
        ("online", True),
        ("offline", False),
    ]


def test_a_second_tab_keeps_the_visitor_online(live_chats: dict[str, Chat]) -> None:
    chat = live_chats["a"]
    session = _session(chat)
    key = visitor_key(chat.slug, session["conversation_id"])

    async def scenario() -> tuple[bool, bool]:
        async with _socket(session["visitor_token"]) as (_, first):
            await first.next()
            async with _socket(session["visitor_token"]) as (_, second):
                await second.next()
            still = bool(get_redis().exists(key))
        return still, bool(get_redis().exists(key))

    assert asyncio.run(scenario()) == (True, False)


def test_read_receipts_move_both_ways(live_chats: dict[str, Chat]) -> None:
    chat = live_chats["a"]
    session = _session(chat)
    conversation_id = session["conversation_id"]

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with (
            _listener(chat, conversation_id) as team,
            _socket(session["visitor_token"]) as (communicator, frames),
        ):
            await frames.next()
            reply = await asyncio.to_thread(_send, chat, conversation_id, "Read me")
            pushed = await frames.until(of_type("message"))
            await communicator.send_json_to({"type": "read", "message_id": pushed["message"]["id"]})
            receipt = await team(("hub.read",))
            await get_channel_layer().group_send(
                conversation_group(chat.slug, conversation_id),
                {"type": "hub.read", "conversation": conversation_id, "who": "operator", "seq": 1},
            )
            seen = await frames.until(of_type("read", who="operator"))
            assert str(reply.pk) == pushed["message"]["id"]
            return receipt, seen

    receipt, seen = asyncio.run(scenario())
    assert (receipt["who"], receipt["seq"]) == ("visitor", 1)
    assert seen == {"type": "read", "who": "operator", "seq": 1}
    with schema_context(chat.slug):
        participant = Participant.objects.get(
            conversation_id=conversation_id, contact__isnull=False
        )
        assert participant.last_read_seq == 1
        assert Message.objects.get(conversation_id=conversation_id, seq=1).status == "read"


# --- Offline replay -------------------------------------------------------------------------


def test_resume_replays_what_came_while_away_in_order_once(live_chats: dict[str, Chat]) -> None:
    chat = live_chats["a"]
    session = _session(chat)
    conversation_id = session["conversation_id"]

    async def first_visit() -> int:
        async with _socket(session["visitor_token"]) as (communicator, frames):
            await communicator.send_json_to(
                {"type": "message", "client_id": "a", "content": {"type": "text", "text": "one"}}
            )
            return (await frames.until(of_type("ack")))["seq"]

    async def second_visit(after: int) -> list[dict[str, Any]]:
        async with _socket(session["visitor_token"]) as (communicator, frames):
            await communicator.send_json_to({"type": "resume", "after_seq": after})
            await frames.until(of_type("resumed"))
            # Nothing else arrives later: no message twice.
            await frames.quiet(0.5)
            return [f for f in frames.seen if f["type"] in ("message", "resumed")]

    last_seen = asyncio.run(first_visit())
    _send(chat, conversation_id, "while you were away")
    _send(chat, conversation_id, "team only", is_private=True)
    _send(chat, conversation_id, "and one more", sender_type="ai")
    replayed = asyncio.run(second_visit(last_seen))
    assert [f.get("message", {}).get("seq") for f in replayed] == [2, 4, None]
    assert [_text(f) for f in replayed[:2]] == ["while you were away", "and one more"]
    assert replayed[-1] == {"type": "resumed", "last_seq": 4}
    everything = asyncio.run(second_visit(0))
    assert [f["message"]["seq"] for f in everything[:-1]] == [1, 2, 4]
    assert everything[0]["message"]["client_id"] == "a"


def test_a_lost_push_is_filled_from_the_database(live_chats: dict[str, Chat]) -> None:
    """An event that never arrived (Redis blinked) shows up with the next one, in order."""
    chat = live_chats["a"]
    session = _session(chat)
    conversation_id = session["conversation_id"]

    async def scenario() -> list[int]:
        async with _socket(session["visitor_token"]) as (_, frames):
            await frames.next()
            await asyncio.to_thread(_send_unannounced, chat, conversation_id, "lost")
            await asyncio.to_thread(_send, chat, conversation_id, "next")
            await frames.until(lambda f: f.get("type") == "message" and _text(f) == "next")
            return [f["message"]["seq"] for f in frames.seen if f["type"] == "message"]

    assert asyncio.run(scenario()) == [1, 2]


def _send_unannounced(chat: Chat, conversation_id: str, text: str) -> None:
    from hub import events

    subscribers = list(events._subscribers)
    events._subscribers.clear()
    try:
        _send(chat, conversation_id, text)
    finally:
        events._subscribers.extend(subscribers)


# --- Who answers -----------------------------------------------------------------------------


def test_the_visitor_sees_the_ai_then_the_person_who_takes_over(
    live_chats: dict[str, Chat],
) -> None:
    chat = live_chats["a"]
    with schema_context(chat.slug):
        agent = AgentFactory.create(name="Ada")
        type(chat.channel()).objects.filter(pk=chat.channel_id).update(agent=agent)
        operator = OperatorFactory.create(display_name="Bruno Costa")
    session = _session(chat)
    conversation_id = session["conversation_id"]

    def take_over() -> None:
        with schema_context(chat.slug):
            conversation = Conversation.objects.get(pk=conversation_id)
            conversation_update(conversation=conversation, ai_active=False, assignee=operator)

    async def scenario() -> list[dict[str, Any]]:
        async with _socket(session["visitor_token"]) as (communicator, frames):
            ai = await frames.next()
            await communicator.send_json_to(
                {"type": "message", "client_id": "q", "content": {"type": "text", "text": "?"}}
            )
            await frames.until(of_type("ack"))
            thinking = await frames.until(of_type("typing"))
            await asyncio.to_thread(take_over)
            person = await frames.until(of_type("presence"))
            return [ai, thinking, person]

    try:
        ai, thinking, person = asyncio.run(scenario())
    finally:
        with schema_context(chat.slug):
            Conversation.objects.filter(pk=conversation_id).update(assignee=None)
            operator.user.delete()
    assert (ai["who"], ai["name"], ai["status"]) == ("ai", "Ada", "online")
    assert (thinking["who"], thinking["name"], thinking["state"]) == ("ai", "Ada", "start")
    assert (person["who"], person["name"], person["status"]) == (
        "operator",
        "Bruno Costa",
        "offline",
    )


# --- Tenants --------------------------------------------------------------------------------


def test_two_tenants_sockets_never_see_each_others_events(live_chats: dict[str, Chat]) -> None:
    a, b = live_chats["a"], live_chats["b"]
    session_a, session_b = _session(a), _session(b)

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with (
            _socket(session_a["visitor_token"]) as (socket_a, frames_a),
            _socket(session_b["visitor_token"]) as (_, frames_b),
        ):
            await frames_a.next()
            await frames_b.next()
            await socket_a.send_json_to(
                {"type": "typing", "state": "start"},
            )
            await socket_a.send_json_to(
                {"type": "message", "client_id": "x", "content": {"type": "text", "text": "a"}}
            )
            await frames_a.until(of_type("ack"))
            await asyncio.to_thread(_send, a, session_a["conversation_id"], "for A only")
            await frames_a.until(of_type("message"))
            return frames_a.seen, await frames_b.quiet(1.0)

    seen_a, seen_b = asyncio.run(scenario())
    assert any(f["type"] == "message" for f in seen_a)
    assert seen_b == []
    # Both tenants number their own conversations: the same seq, different worlds.
    with schema_context(b.slug):
        assert not Message.objects.filter(conversation_id=session_b["conversation_id"]).exists()
