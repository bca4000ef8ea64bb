"""The web chat end to end: HTTP sessions and real WebSockets (the `websockets` client) through
the running ASGI server (uvicorn), with the team's side written in this process, as the inbox
or a Celery worker would."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import websockets
from django_tenants.utils import schema_context
from websockets.exceptions import ConnectionClosed

from agents.models import Agent
from channels_app.models import Channel
from conversations.models import Conversation, Message
from conversations.services.messages import message_send
from knowledge.models import KnowledgeDocument
from tests.webchat.conftest import ORIGIN, Chat, Frames, of_type


def _session(server: str, chat: Chat, **body: Any) -> dict[str, Any]:
    response = requests.post(
        f"{server}{chat.base}/session/", json=body, headers={"Origin": ORIGIN}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    return response.json()


@asynccontextmanager
async def _socket(
    server: str, session: dict[str, Any], *, origin: str = ORIGIN
) -> AsyncIterator[tuple[Any, Frames]]:
    url = server.replace("http://", "ws://") + session["ws_url"]
    async with websockets.connect(url, origin=origin, max_size=None) as socket:  # type: ignore[arg-type]
        yield socket, Frames(socket.recv)


async def _close_code(server: str, session: dict[str, Any], **kwargs: Any) -> int | None:
    try:
        async with _socket(server, session, **kwargs) as (socket, _):
            while True:
                await asyncio.wait_for(socket.recv(), 10)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


def _reply(chat: Chat, conversation_id: str, text: str, **kwargs: Any) -> Message:
    with schema_context(chat.slug):
        message, _ = message_send(
            conversation=Conversation.objects.get(pk=conversation_id),
            content={"type": "text", "text": text},
            sender_type=kwargs.pop("sender_type", "operator"),
            **kwargs,
        )
        return message


def test_a_visitor_chats_with_the_team_through_the_server(
    live_chats: dict[str, Chat], live_server_url: str
) -> None:
    chat = live_chats["a"]
    session = _session(live_server_url, chat)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], float]:
        async with _socket(live_server_url, session) as (socket, frames):
            await frames.until(of_type("presence"))
            await socket.send(
                json.dumps(
                    {
                        "type": "message",
                        "client_id": "m1",
                        "content": {"type": "text", "text": "Hi"},
                    }
                )
            )
            ack = await frames.until(of_type("ack"))
            started = time.monotonic()
            await asyncio.to_thread(_reply, chat, session["conversation_id"], "Hello, visitor")
            pushed = await frames.until(of_type("message"))
            return ack, pushed, time.monotonic() - started

    ack, pushed, elapsed = asyncio.run(scenario())
    assert (ack["client_id"], ack["seq"]) == ("m1", 1)
    assert pushed["message"]["content"] == {"type": "text", "text": "Hello, visitor"}
    assert pushed["message"]["seq"] == 2
    # From the commit in this process to the frame on the visitor's socket (generous: CI).
    assert elapsed < 2
    with schema_context(chat.slug):
        stored = Message.objects.get(pk=ack["message_id"])
        assert (stored.direction, stored.client_id, stored.text) == ("in", "m1", "Hi")


def test_the_server_closes_bad_tokens_foreign_origins_and_huge_frames(
    live_chats: dict[str, Chat], live_server_url: str, tmp_path: Path
) -> None:
    session = _session(live_server_url, live_chats["a"])
    forged = {**session, "ws_url": session["ws_url"][:-2] + "zz"}
    assert asyncio.run(_close_code(live_server_url, forged)) == 4401
    missing = {**session, "ws_url": "/ws/webchat/"}
    assert asyncio.run(_close_code(live_server_url, missing)) == 4401
    assert asyncio.run(_close_code(live_server_url, session, origin="https://evil.example")) == 4403

    async def oversized() -> int | None:
        try:
            async with _socket(live_server_url, session) as (socket, frames):
                await frames.next()
                await socket.send(json.dumps({"type": "ping", "pad": "x" * 70_000}))
                while True:
                    await asyncio.wait_for(socket.recv(), 10)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None

    assert asyncio.run(oversized()) == 1009
    # The server logged each handshake, without the visitor's token.
    log = (tmp_path / "uvicorn.log").read_text()
    assert "/ws/webchat/?token=[redacted]" in log
    assert session["visitor_token"].split(":")[0] not in log


def test_a_reconnecting_visitor_gets_what_it_missed_once_and_in_order(
    live_chats: dict[str, Chat], live_server_url: str
) -> None:
    chat = live_chats["a"]
    session = _session(live_server_url, chat)
    conversation_id = session["conversation_id"]

    async def before() -> int:
        async with _socket(live_server_url, session) as (socket, frames):
            await socket.send(
                json.dumps(
                    {"type": "message", "client_id": "q", "content": {"type": "text", "text": "?"}}
                )
            )
            return (await frames.until(of_type("ack")))["seq"]

    last_seq = asyncio.run(before())
    # The network is gone; the team answers meanwhile, with a private note in between.
    for text, private in (("first", False), ("note", True), ("second", False), ("third", False)):
        _reply(chat, conversation_id, text, is_private=private)
    # A returning page asks for a session again (same visitor, same conversation).
    again = _session(live_server_url, chat, visitor_token=session["visitor_token"])
    assert again["conversation_id"] == conversation_id

    async def after() -> list[dict[str, Any]]:
        async with _socket(live_server_url, again) as (socket, frames):
            await socket.send(json.dumps({"type": "resume", "after_seq": last_seq}))
            await frames.until(of_type("resumed"))
            # While it is connected, one more: pushed live, right after the replay.
            await asyncio.to_thread(_reply, chat, conversation_id, "live")
            await frames.until(lambda f: f.get("type") == "message" and f["message"]["seq"] == 6)
            await frames.quiet(0.5)
            return [f["message"] for f in frames.seen if f["type"] == "message"]

    messages = asyncio.run(after())
    assert [(m["seq"], m["content"]["text"]) for m in messages] == [
        (2, "first"),
        (4, "second"),
        (5, "third"),
        (6, "live"),
    ]


def test_two_tenants_sockets_never_see_each_other(
    live_chats: dict[str, Chat], live_server_url: str
) -> None:
    a, b = live_chats["a"], live_chats["b"]
    session_a, session_b = _session(live_server_url, a), _session(live_server_url, b)
    # A token is the tenant's: tenant B's session endpoint does not take tenant A's.
    crossed = _session(live_server_url, b, visitor_token=session_a["visitor_token"])
    assert crossed["conversation_id"] != session_a["conversation_id"]

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with (
            _socket(live_server_url, session_a) as (socket_a, frames_a),
            _socket(live_server_url, session_b) as (_, frames_b),
        ):
            await frames_a.next()
            await frames_b.next()
            await socket_a.send(json.dumps({"type": "typing", "state": "start"}))
            await socket_a.send(
                json.dumps(
                    {"type": "message", "client_id": "a1", "content": {"type": "text", "text": "a"}}
                )
            )
            await frames_a.until(of_type("ack"))
            await asyncio.to_thread(_reply, a, session_a["conversation_id"], "only for A")
            await frames_a.until(of_type("message"))
            return frames_a.seen, await frames_b.quiet(1.5)

    seen_a, seen_b = asyncio.run(scenario())
    assert [f["message"]["content"]["text"] for f in seen_a if f["type"] == "message"] == [
        "only for A"
    ]
    assert seen_b == []


@pytest.fixture
def answering_chat(live_chats: dict[str, Chat]) -> Any:
    """Tenant A's chat with an agent answering from a knowledge document (the offline
    responder: tests have no OpenAI key)."""
    chat = live_chats["a"]
    with schema_context(chat.slug):
        agent = Agent.objects.create(name="Ada", instructions="Answer from the documents.")
        Channel.objects.filter(pk=chat.channel_id).update(agent=agent)
        document = KnowledgeDocument.objects.create(
            title="Opening hours",
            body="Our shop opens at nine in the morning. We close at six in the evening.",
        )
    yield chat
    with schema_context(chat.slug):
        document.delete()


def test_a_visitors_message_goes_through_the_pipeline_and_the_ai_reply_comes_back(
    answering_chat: Chat, live_server_url: str, worker: Any
) -> None:
    chat = answering_chat
    session = _session(live_server_url, chat)

    async def scenario() -> list[dict[str, Any]]:
        async with _socket(live_server_url, session) as (socket, frames):
            answering = await frames.until(of_type("presence"))
            assert (answering["who"], answering["name"]) == ("ai", "Ada")
            await socket.send(
                json.dumps(
                    {
                        "type": "message",
                        "client_id": "hours",
                        "content": {"type": "text", "text": "When does the shop open?"},
                    }
                )
            )
            await frames.until(of_type("ack"))
            await frames.until(of_type("typing", who="ai", state="start"))
            reply = await frames.until(of_type("message"), timeout=60)
            # The indicator goes as the answer comes.
            assert of_type("typing", who="ai", state="stop")(frames.seen[-2])
            return [reply["message"]]

    (reply,) = asyncio.run(scenario())
    assert reply["sender_type"] == "ai"
    assert "nine in the morning" in reply["content"]["text"]
