"""The web chat widget in a real browser: a visitor on the demo page talks to the AI (the
offline responder answering from a knowledge document, through a real Celery worker), reloads
and finds the thread intact; choices, images, the team's typing indicator and a phone-sized
screen. Screenshots go to test-artifacts/."""

from __future__ import annotations

import os
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from agents.models import Agent
from channels_app.models import Channel
from conversations.live import conversation_group
from conversations.models import Conversation, Message
from conversations.services.messages import message_send
from knowledge.models import KnowledgeDocument
from tests import support
from tests.conftest import TenantInfo
from tests.webchat.conftest import Chat, chat_create, chat_purge

pytestmark = pytest.mark.browser


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one colour, so the browser shows it as an image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(autouse=True)
def _queries_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Playwright's sync API runs an event loop in this thread, so Django takes every query here
    # for one made from async code. The test only waits on the browser between queries.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    yield
    # Closed while that is allowed: at the end of the session, with the browser's loop still
    # running, Django could not close it and the test database could not be dropped.
    connection.close()


@pytest.fixture
def hub(committed_db: dict[str, TenantInfo], tmp_path: Path) -> Iterator[str]:
    """The ASGI server serving static files, as under `make run`."""
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


@pytest.fixture
def demo_chat(hub: str, committed_db: dict[str, TenantInfo]) -> Iterator[Chat]:
    """Tenant A's only web chat, embeddable on the hub's own pages (the demo page)."""
    slug = committed_db["a"].slug
    chat = chat_create(slug, origins=[hub])
    try:
        yield chat
    finally:
        chat_purge(chat)


def _open(page: Any, url: str, *, launcher: str = "Open chat", composer: str = "") -> None:
    page.goto(url)
    page.get_by_role("button", name=re.compile(f"^{launcher}")).click()
    page.get_by_role("textbox", name=composer or "Write a message…").wait_for()


@contextmanager
def _shop_site(hub: str, chat: Chat, *, lang: str) -> Iterator[str]:
    """A customer's page on its own origin (another port), embedding the widget with its one
    script tag: sessions, uploads and the socket all cross origins, as in real life."""
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Acme</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'></head>"
        "<body style='font-family:Georgia,serif;color:#7c2d12'><h1>Acme shoes</h1>"
        "<style>button{all:unset;color:red} *{font-size:30px!important}</style>"
        f'<script src="{hub}/static/hub/widget.js" data-tenant="{chat.slug}" '
        f'data-channel="{chat.channel_token}" data-lang="{lang}" async></script></body></html>'
    ).encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _beside_playwright(function: Any, *args: Any) -> Any:
    """Runs `function` in another thread: the pushes a write makes (async_to_sync) cannot run
    in this one, where Playwright's event loop is."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()


def _send_in(slug: str, conversation: Conversation, content: dict[str, Any]) -> None:
    with schema_context(slug):
        message_send(conversation=conversation, content=content, sender_type="ai")
    connection.close()


def _bubbles(page: Any) -> list[str]:
    return [text.strip() for text in page.locator(".bubble").all_inner_texts()]


def test_a_visitor_asks_the_ai_and_finds_the_thread_after_a_reload(
    hub: str, demo_chat: Chat, worker: Any, screenshot: Any, browser: Any
) -> None:
    with schema_context(demo_chat.slug):
        agent = Agent.objects.create(name="Ada", instructions="Answer from the documents.")
        Channel.objects.filter(pk=demo_chat.channel_id).update(agent=agent)
        document = KnowledgeDocument.objects.create(
            title="Opening hours",
            body="Our shop opens at nine in the morning. We close at six in the evening.",
        )
    # Reduced motion: no opening animation half-way through in the screenshots.
    context = browser.new_context(viewport={"width": 1280, "height": 820}, reduced_motion="reduce")
    try:
        page = context.new_page()
        page.goto(f"{hub}/t/{demo_chat.slug}/chat-demo/")
        launcher = page.get_by_role("button", name=re.compile("^Open chat"))
        launcher.wait_for()
        screenshot(page, "1-demo-page")
        _open(page, f"{hub}/t/{demo_chat.slug}/chat-demo/")
        page.get_by_text("Ada · Replies instantly").wait_for()
        screenshot(page, "2-chat-open")

        composer = page.get_by_role("textbox", name="Write a message…")
        composer.fill("When does the shop open?")
        composer.press("Enter")
        page.locator(".row.mine .bubble", has_text="When does the shop open?").wait_for()
        reply = page.locator(".row.theirs .bubble", has_text="nine in the morning")
        reply.wait_for(timeout=60_000)
        # Answered: the visitor's message shows as read.
        page.locator(".row.mine .meta svg.read").wait_for()
        screenshot(page, "3-ai-answered")

        page.reload()
        _open(page, f"{hub}/t/{demo_chat.slug}/chat-demo/")
        page.locator(".row.theirs .bubble", has_text="nine in the morning").wait_for()
        bubbles = _bubbles(page)
        assert bubbles[0] == "When does the shop open?"
        assert "nine in the morning" in bubbles[1]
        assert len(bubbles) == 2
        screenshot(page, "4-after-reload")
    finally:
        context.close()
        with schema_context(demo_chat.slug):
            document.delete()
    with schema_context(demo_chat.slug):
        conversation = Conversation.objects.get(channel_id=demo_chat.channel_id)
        texts = list(
            Message.objects.filter(conversation=conversation)
            .order_by("seq")
            .values_list("sender_type", flat=True)
        )
    # Reloading sent nothing twice and started no second conversation.
    assert texts == ["contact", "ai"]


def test_on_a_customers_site_choices_images_and_typing_work_on_a_phone(
    hub: str, demo_chat: Chat, screenshot: Any, tmp_path: Path, browser: Any
) -> None:
    image = tmp_path / "receipt.png"
    image.write_bytes(_png(240, 160, (251, 146, 60)))
    context = browser.new_context(
        viewport={"width": 360, "height": 740}, is_mobile=True, reduced_motion="reduce"
    )
    with _shop_site(hub, demo_chat, lang="de") as shop:
        with schema_context(demo_chat.slug):
            channel = Channel.objects.get(pk=demo_chat.channel_id)
            channel.config = {**channel.config, "allowed_origins": [shop]}
            channel.save(update_fields=["config"])
        try:
            _on_a_phone(context, shop, demo_chat, image, screenshot)
        finally:
            context.close()


def _on_a_phone(context: Any, shop: str, demo_chat: Chat, image: Path, screenshot: Any) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    page = context.new_page()
    _open(page, shop, launcher="Chat öffnen", composer="Nachricht schreiben…")
    # Nobody is assigned and no agent answers: the header says the team will reply.
    page.get_by_text("Unser Team antwortet hier in Kürze").wait_for()
    composer = page.get_by_role("textbox", name="Nachricht schreiben…")
    composer.fill("Hallo, ich habe eine Frage zu meiner Bestellung")
    page.get_by_role("button", name="Nachricht senden").click()
    page.locator(".row.mine .bubble", has_text="Bestellung").wait_for()

    def conversation_with_the_question() -> Conversation | None:
        with schema_context(demo_chat.slug):
            return Conversation.objects.filter(channel_id=demo_chat.channel_id, last_seq=1).first()

    conversation = support.wait_until(
        conversation_with_the_question, timeout=15, what="the question stored"
    )
    _beside_playwright(
        _send_in,
        demo_chat.slug,
        conversation,
        {
            "type": "buttons",
            "text": "Worum geht es?",
            "buttons": [
                {"id": "status", "title": "Lieferstatus"},
                {"id": "return", "title": "Rücksendung"},
            ],
        },
    )
    page.get_by_role("button", name="Rücksendung").click()
    page.locator(".row.mine .bubble", has_text="Rücksendung").wait_for()

    page.locator("input[type=file]").set_input_files(str(image))
    page.locator(".row.mine img").last.wait_for()

    def stored() -> list[Message]:
        with schema_context(demo_chat.slug):
            return list(Message.objects.filter(conversation=conversation).order_by("seq"))

    messages = support.wait_until(
        lambda: (found := stored()) and len(found) == 4 and found,
        timeout=15,
        what="the image message",
    )

    _beside_playwright(
        async_to_sync(get_channel_layer().group_send),
        conversation_group(demo_chat.slug, str(conversation.pk)),
        {
            "type": "hub.typing",
            "conversation": str(conversation.pk),
            "who": "operator",
            "name": "Anna",
            "state": "start",
            "sender_channel": "inbox",
        },
    )
    page.get_by_text("Anna schreibt…").wait_for()
    panel = page.get_by_role("dialog")
    box = panel.bounding_box()
    assert box is not None
    assert box["width"] <= 360
    screenshot(page, "mobile-360-de")

    assert [m.sender_type for m in messages] == ["contact", "ai", "contact", "contact"]
    choice = messages[2].content
    assert choice == {
        "type": "text",
        "text": "Rücksendung",
        "choice": {"id": "return", "title": "Rücksendung"},
    }
    picture = messages[3]
    assert picture.content["type"] == "image"
    with schema_context(demo_chat.slug):
        assert picture.attachments.get().content_type == "image/png"

    # Keyboard only: Escape closes the chat and gives focus back to the launcher.
    composer.focus()
    page.keyboard.press("Escape")
    assert not panel.is_visible()
    launcher = page.get_by_role("button", name=re.compile("^Chat öffnen"))
    assert launcher.evaluate("node => node.getRootNode().activeElement === node")
