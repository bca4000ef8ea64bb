"""The fan-out of a conversation's group messages to its visitor sockets (webchat/fanout.py),
through the real ASGI server (one uvicorn process): many sockets of one conversation, sockets
closing in the middle of a burst, conversations and tenants kept apart, and the process's one
subscription per conversation, seen from Redis. (A Redis restart: tests/drills/test_live_push.py.)
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings

from conversations.live import conversation_group
from hub.redis import get_redis
from tests.support import wait_until
from tests.webchat.conftest import Chat, Socket, messages, open_socket, reply, visitor
from webchat import fanout as fanout_module


async def frames_within(socket: Socket, seconds: float) -> list[dict[str, Any]]:
    received = []
    try:
        while True:
            received.append(json.loads(await asyncio.wait_for(socket.recv(), seconds)))
    except TimeoutError:
        return received


def group_channel(chat: Chat, conversation_id: str) -> str:
    """The Redis pub/sub channel of a conversation's group (channels_redis' pub/sub layer)."""
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    return f"{prefix}__group__{conversation_group(chat.slug, conversation_id)}"


def subscribers(channel: str) -> int:
    return int(dict(get_redis().pubsub_numsub(channel))[channel.encode()])


def socket_channels() -> int:
    """Channels of their own that consumers (or the fan-out) subscribed in this suite's prefix."""
    prefix = settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"]
    return len(get_redis().pubsub_channels(f"{prefix}specific.*"))


def test_a_burst_reaches_every_socket_of_a_conversation_in_order_once(
    live_chats: dict[str, Chat], live_server_url: str
) -> None:
    chat = live_chats["a"]
    token, conversation_id = visitor(chat)
    texts = [f"m{index}" for index in range(40)]

    async def scenario() -> list[list[tuple[int, str]]]:
        sockets = [await open_socket(live_server_url, token) for _ in range(30)]
        try:
            burst = asyncio.create_task(asyncio.to_thread(reply, chat, conversation_id, *texts))
            received = await asyncio.gather(*(messages(s, len(texts)) for s in sockets))
            await burst
            return received
        finally:
            await asyncio.gather(*(s.close() for s in sockets))

    expected = [(seq, text) for seq, text in enumerate(texts, start=1)]
    for received in asyncio.run(scenario()):
        assert received == expected


def test_sockets_closing_mid_burst_leave_the_others_whole(
    live_chats: dict[str, Chat], live_server_url: str
) -> None:
    chat = live_chats["a"]
    token, conversation_id = visitor(chat)
    texts = [f"m{index}" for index in range(40)]

    async def leave_early(socket: Socket, *, abort: bool) -> None:
        await messages_until_first(socket)
        if abort:
            # The network is gone: no closing handshake.
            socket.transport.abort()
        else:
            await socket.close()

    async def messages_until_first(socket: Socket) -> None:
        while json.loads(await asyncio.wait_for(socket.recv(), 30))["type"] != "message":
            pass

    async def scenario() -> tuple[list[list[tuple[int, str]]], list[tuple[int, str]]]:
        stay = [await open_socket(live_server_url, token) for _ in range(10)]
        go = [await open_socket(live_server_url, token) for _ in range(10)]
        burst = asyncio.create_task(asyncio.to_thread(reply, chat, conversation_id, *texts))
        leaving = [
            asyncio.create_task(leave_early(s, abort=index % 2 == 0)) for index, s in enumerate(go)
        ]
        received = await asyncio.gather(*(messages(s, len(texts)) for s in stay))
        await asyncio.gather(burst, *leaving)
        # The fan-out goes on for the conversation, and for a socket that comes afterwards.
        late = await open_socket(live_server_url, token)
        await asyncio.to_thread(reply, chat, conversation_id, "after")
        after = await messages(late, 1)
        for socket in stay:
            assert await messages(socket, 1) == after
        await asyncio.gather(*(s.close() for s in [*stay, late]))
        return received, after

    received, after = asyncio.run(scenario())
    expected = [(seq, text) for seq, text in enumerate(texts, start=1)]
    assert all(each == expected for each in received)
    assert after == [(41, "after")]


def test_conversations_and_tenants_never_cross(
    live_chats: dict[str, Chat], live_server_url: str
) -> None:
    a, b = live_chats["a"], live_chats["b"]
    (token_a1, conversation_a1), (token_a2, conversation_a2) = visitor(a), visitor(a)
    token_b, conversation_b = visitor(b)

    async def scenario() -> dict[str, list[list[dict[str, Any]]]]:
        sockets = {
            "a1": [await open_socket(live_server_url, token_a1) for _ in range(2)],
            "a2": [await open_socket(live_server_url, token_a2)],
            "b": [await open_socket(live_server_url, token_b)],
        }
        await asyncio.to_thread(reply, a, conversation_a1, "for a1")
        await asyncio.to_thread(reply, a, conversation_a2, "for a2")
        await asyncio.to_thread(reply, b, conversation_b, "for b")
        # The team typing in A1 (as the inbox sends it, into the conversation's group).
        await get_channel_layer().group_send(
            conversation_group(a.slug, conversation_a1),
            {
                "type": "hub.typing",
                "conversation": conversation_a1,
                "who": "operator",
                "name": "Anna",
                "state": "start",
            },
        )
        seen = {
            key: [await frames_within(socket, 1.5) for socket in group]
            for key, group in sockets.items()
        }
        await asyncio.gather(*(s.close() for group in sockets.values() for s in group))
        return seen

    seen = asyncio.run(scenario())

    def summary(frames: list[dict[str, Any]]) -> list[str]:
        # Sorted: the reply and the typing come from two publishers, in either order.
        return sorted(
            frame["message"]["content"]["text"] if frame["type"] == "message" else frame["type"]
            for frame in frames
            if frame["type"] in ("message", "typing")
        )

    assert [summary(frames) for frames in seen["a1"]] == [["for a1", "typing"]] * 2
    assert [summary(frames) for frames in seen["a2"]] == [["for a2"]]
    assert [summary(frames) for frames in seen["b"]] == [["for b"]]


def test_one_subscription_per_conversation_dropped_with_its_last_socket(
    live_chats: dict[str, Chat], live_server_url: str
) -> None:
    chat = live_chats["a"]
    token_x, conversation_x = visitor(chat)
    token_y, conversation_y = visitor(chat)
    group_x, group_y = group_channel(chat, conversation_x), group_channel(chat, conversation_y)
    before = socket_channels()

    async def scenario() -> None:
        xs = [await open_socket(live_server_url, token_x) for _ in range(3)]
        assert subscribers(group_x) == 1
        # One channel for the conversation in the server process, not one per socket.
        assert socket_channels() == before + 1
        y = await open_socket(live_server_url, token_y)
        assert (subscribers(group_y), socket_channels()) == (1, before + 2)

        await xs[0].close()
        await xs[1].close()
        # Both closes are handled once X's last socket still hears its conversation.
        await asyncio.to_thread(reply, chat, conversation_x, "still here")
        assert await messages(xs[2], 1) == [(1, "still here")]
        assert subscribers(group_x) == 1

        await xs[2].close()
        await asyncio.to_thread(
            wait_until, lambda: subscribers(group_x) == 0, timeout=10, what="X unsubscribed"
        )
        assert (subscribers(group_y), socket_channels()) == (1, before + 1)
        await y.close()
        # The channel goes first, then the group (the layer unsubscribes them one at a time).
        await asyncio.to_thread(
            wait_until,
            lambda: (socket_channels(), subscribers(group_y)) == (before, 0),
            timeout=10,
            what="no channel or subscription left",
        )

        # A visitor that comes back subscribes again.
        again = await open_socket(live_server_url, token_x)
        await asyncio.to_thread(reply, chat, conversation_x, "welcome back")
        assert await messages(again, 1) == [(2, "welcome back")]
        await again.close()

    asyncio.run(scenario())


class _Recording:
    def __init__(self, *, stuck: bool = False) -> None:
        self.stuck = stuck
        self.received: list[int] = []
        self.stalls = 0

    async def group_event(self, message: dict[str, Any]) -> None:
        self.received.append(message["n"])
        if self.stuck:
            # A client that stopped reading: its send never completes.
            await asyncio.Event().wait()

    def stalled(self) -> None:
        self.stalls += 1


def test_a_stalled_socket_is_dropped_and_its_conversation_keeps_flowing(monkeypatch) -> None:
    """A socket whose send blocks holds up its conversation's other sockets in the process for
    at most STALL_SECONDS per message, once: then it leaves the group and is told to close."""
    monkeypatch.setattr(fanout_module, "STALL_SECONDS", 0.3)
    group = f"stall_test.conversation.{uuid.uuid4()}"

    async def scenario() -> tuple[_Recording, _Recording, _Recording, bool]:
        layer = get_channel_layer()
        fan = fanout_module.Fanout(layer)
        first, stuck, last = _Recording(), _Recording(stuck=True), _Recording()
        for member in (first, stuck, last):
            await fan.join(group, member)
        for n in range(3):
            await layer.group_send(group, {"type": "hub.event", "n": n})
        deadline = asyncio.get_running_loop().time() + 10
        while len(last.received) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        still_member = stuck in fan.groups[group].members
        for member in (first, last):
            fan.leave(group, member)
        return first, stuck, last, still_member

    first, stuck, last, still_member = asyncio.run(scenario())
    assert first.received == last.received == [0, 1, 2]
    assert stuck.received == [0]
    assert stuck.stalls == 1
    assert not still_member
