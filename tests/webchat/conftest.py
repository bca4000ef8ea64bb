"""Web chat channels for tests, and a visitor's socket as a test drives it.

HTTP tests run in the test transaction (`chat_a`). Socket tests need committed rows, since the
consumer reads in worker threads with their own connections (`live_chats`, cleaned up after).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets
from django.test import Client
from django_tenants.utils import schema_context

from channels_app.models import Channel, ChannelKind
from conversations.models import Attachment, Contact, Conversation, Message
from conversations.services.messages import message_send
from tests import support
from tests.conftest import TenantInfo
from webchat.services import visitor_session_start

ORIGIN = "https://shop.example.com"


def _websocket_communicator() -> Any:
    """Channels' own WebsocketCommunicator. `channels.testing` imports daphne in its __init__,
    for a live-server test case these tests do not use (their live server is uvicorn); where
    daphne is not installed, the communicator's modules are loaded without that __init__."""
    try:
        from channels.testing import WebsocketCommunicator

        return WebsocketCommunicator
    except ModuleNotFoundError:
        pass
    spec = importlib.util.find_spec("channels.testing")
    assert spec is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules["channels.testing"] = package
    try:
        module = importlib.import_module("channels.testing.websocket")
    finally:
        # Nobody else gets the half-made package: a later import fails as before.
        del sys.modules["channels.testing"]
    return module.WebsocketCommunicator


WebsocketCommunicator = _websocket_communicator()


@dataclass(frozen=True)
class Chat:
    slug: str
    channel_id: uuid.UUID
    channel_token: str

    @property
    def base(self) -> str:
        return f"/webchat/{self.slug}/{self.channel_token}"

    def session(self, client: Client, *, origin: str | None = ORIGIN, **body: Any) -> Any:
        headers: dict[str, Any] = {"HTTP_ORIGIN": origin} if origin else {}
        return client.post(
            f"{self.base}/session/",
            data=json.dumps(body),
            content_type="application/json",
            **headers,
        )

    def channel(self) -> Channel:
        with schema_context(self.slug):
            return Channel.objects.get(pk=self.channel_id)


def chat_create(slug: str, *, agent: Any = None, origins: list[str] | None = None) -> Chat:
    with schema_context(slug):
        channel = Channel.objects.create(
            kind=ChannelKind.WEBCHAT,
            name="Website chat",
            agent=agent,
            config={
                "allowed_origins": origins or [ORIGIN],
                "title": "Talk to Acme",
                "color": "#0f766e",
            },
        )
        return Chat(slug=slug, channel_id=channel.pk, channel_token=channel.channel_token)


def chat_purge(chat: Chat) -> None:
    """Removes a committed channel and everything its visitors left behind."""
    with schema_context(chat.slug):
        conversations = Conversation.objects.filter(channel_id=chat.channel_id)
        contact_ids = list(conversations.values_list("contact_id", flat=True))
        for attachment in Attachment.objects.filter(conversation__in=conversations):
            attachment.file.delete(save=False)
        conversations.update(last_message=None)
        Message.objects.filter(conversation__in=conversations).delete()
        conversations.delete()
        Contact.objects.filter(pk__in=contact_ids).delete()
        channel = Channel.objects.get(pk=chat.channel_id)
        agent = channel.agent
        channel.delete()
        if agent is not None:
            agent.delete()


@pytest.fixture(scope="session", autouse=True)
def _socket_threads_connections(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """The consumer queries from pool threads. Under Channels' communicator their connections
    stay open (it stubs out the closing), and outlive the threads: end them before the test
    database is dropped."""
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def chat_a(tenant_a: TenantInfo) -> Chat:
    return chat_create(tenant_a.slug)


@pytest.fixture
def live_chats(committed_db: dict[str, TenantInfo]) -> Iterator[dict[str, Chat]]:
    chats = {key: chat_create(info.slug) for key, info in committed_db.items()}
    try:
        yield chats
    finally:
        for chat in chats.values():
            chat_purge(chat)


@pytest.fixture
def hub_server(committed_db: dict[str, TenantInfo], tmp_path: Path) -> Iterator[str]:
    """The real ASGI server, serving static files as `make run` does."""
    previous = os.environ.get("HUB_DEBUG")
    os.environ["HUB_DEBUG"] = "1"
    try:
        with support.asgi_server(tmp_path) as url:
            yield url
    finally:
        if previous is None:
            os.environ.pop("HUB_DEBUG", None)
        else:
            os.environ["HUB_DEBUG"] = previous


class Frames:
    """The frames a socket received, read with a timeout, so a test waits for what it expects
    and fails (rather than hangs) when it never comes."""

    def __init__(self, receive: Any) -> None:
        self._receive = receive
        self.seen: list[dict[str, Any]] = []

    async def next(self, timeout: float = 5) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self._receive(), timeout))
        self.seen.append(frame)
        return frame

    async def until(self, predicate: Any, timeout: float = 10) -> dict[str, Any]:
        """The first frame matching; those before it stay in `seen`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no matching frame; received {self.seen}")
            frame = await self.next(remaining)
            if predicate(frame):
                return frame

    async def quiet(self, seconds: float) -> list[dict[str, Any]]:
        """Everything that arrives within `seconds` (often: nothing)."""
        received = []
        try:
            while True:
                received.append(await self.next(seconds))
        except TimeoutError:
            return received


def of_type(kind: str, **fields: Any) -> Any:
    def match(frame: dict[str, Any]) -> bool:
        return frame.get("type") == kind and all(frame.get(k) == v for k, v in fields.items())

    return match


# --- Real sockets on the real server, for the fan-out (test_fanout.py) and the drills ----------

Socket = Any


def visitor(chat: Chat) -> tuple[str, str]:
    """A visitor's token and conversation, minted as the session endpoint does."""
    with schema_context(chat.slug):
        session = visitor_session_start(channel=chat.channel(), schema=chat.slug)
    return session.token, str(session.conversation.pk)


def reply(chat: Chat, conversation_id: str, *texts: str) -> None:
    """The team's messages, one transaction each, back to back."""
    with schema_context(chat.slug):
        conversation = Conversation.objects.get(pk=conversation_id)
        for text in texts:
            message_send(
                conversation=conversation,
                content={"type": "text", "text": text},
                sender_type="operator",
            )


async def open_socket(server: str, token: str) -> Socket:
    url = server.replace("http://", "ws://") + f"/ws/webchat/?token={token}"
    socket = await websockets.connect(url, origin=ORIGIN)  # type: ignore[arg-type]
    # The first frame (who answers) comes once the socket is in its group.
    first = json.loads(await asyncio.wait_for(socket.recv(), 10))
    assert first["type"] == "presence"
    return socket


async def messages(socket: Socket, count: int, *, timeout: float = 30) -> list[tuple[int, str]]:
    """The next `count` message frames as (seq, text), then half a second of nothing more."""
    got: list[tuple[int, str]] = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            frame = json.loads(await socket.recv())
            if frame["type"] == "message":
                got.append((frame["message"]["seq"], frame["message"]["content"]["text"]))
    try:
        extra = await asyncio.wait_for(socket.recv(), 0.5)
    except TimeoutError:
        return got
    raise AssertionError(f"after {got}: {extra}")
