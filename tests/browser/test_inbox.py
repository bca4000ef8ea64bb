"""The operator's half of the live chat in a real browser: an operator signs in, opens the inbox,
sees the visitor typing, takes the conversation over from the AI and replies (with a canned
response and a private note); the visitor, on the demo page with the real widget in a second
browser context, sees the operator typing and the reply, and finds the thread intact after a
reload. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.db.backends.signals import connection_created
from django.test import override_settings
from django_tenants.utils import schema_context

from agents.models import Agent
from channels_app.models import Channel, ChannelKind
from conversations.models import Conversation, Message
from inbox.services import notification_create
from tests import support
from tests.inbox.conftest import PASSWORD, Committed
from tests.inbox.conftest import committed as committed  # the fixture, shared with tests/inbox

pytestmark = pytest.mark.browser

WIDGET = "#hub-webchat"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """tests/browser/conftest.py's browser, for this module only. Playwright's sync API keeps an
    event loop running in this thread while it is open; a session-wide browser would leave it
    running under every later test, where `asyncio.run` and Django's ORM then refuse to work."""
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, _require_chromium

    _require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def collected_static(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The static files (widget.js, inbox.js, the admin's), collected as production does: the
    test server runs without DEBUG, so WhiteNoise serves STATIC_ROOT only."""
    root = tmp_path_factory.mktemp("static")
    with override_settings(STATIC_ROOT=root):
        call_command("collectstatic", interactive=False, verbosity=0)
    return root


@pytest.fixture(autouse=True)
def _browser_environment(monkeypatch: pytest.MonkeyPatch, collected_static: Path) -> Iterator[None]:
    # Read by the ASGI server this test starts (live_server_url), which inherits the environment.
    monkeypatch.setenv("HUB_STATIC_ROOT", str(collected_static))
    # Playwright's sync API runs an event loop in this thread, so Django takes every query here
    # for one made from async code. The test only waits on the browser between queries.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # Django keeps a connection per context, and Playwright switches contexts: queries of this
    # test open connections that close_all() here cannot see. Each is closed by hand, or the
    # test database could not be dropped at the end.
    opened: list[Any] = []
    here = threading.get_ident()

    def remember(sender: Any, connection: Any, **kwargs: Any) -> None:
        if threading.get_ident() == here:
            opened.append(connection)

    connection_created.connect(remember)
    yield
    connection_created.disconnect(remember)
    for connection in opened:
        connection.close()


def _webchat_channel(committed: Committed, origin: str) -> Channel:
    """A web chat with an AI agent that the demo page embeds (the tenant's first enabled one)."""
    a = committed.a
    with schema_context(a.slug):
        agent = Agent.objects.create(name="Shop assistant")
        committed.made.setdefault(a.slug, {}).setdefault("agent", []).append(agent.pk)
        channel = Channel.objects.create(
            kind=ChannelKind.WEBCHAT,
            name="Website chat",
            agent=agent,
            config={"allowed_origins": [origin], "title": "Acme support", "color": "#3657f0"},
        )
        committed.made[a.slug].setdefault("channel", []).append(channel.pk)
        return channel


def _elsewhere(slug: str, write: Callable[[], object]) -> None:
    """A write as the hub's own processes make it: in another thread, since this one runs
    Playwright's event loop and the live push after commit must not."""

    def run() -> None:
        try:
            with schema_context(slug):
                write()
        finally:
            from django.db import connection as _c
        with _c.cursor() as cur:
            cur.execute("select pg_backend_pid()")
            print("TEST END pid", cur.fetchone()[0])
        connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)


def _visitor_conversation(slug: str, channel: Channel) -> Conversation:
    """The conversation the widget's first message made."""

    def stored() -> Conversation | None:
        with schema_context(slug):
            return Conversation.objects.filter(channel=channel, last_seq__gte=1).first()

    return support.wait_until(stored, timeout=15, what="the visitor's message stored")


def test_operator_takes_over_and_the_visitor_sees_typing_and_the_reply(
    committed: Committed, live_server_url: str, browser: Any, screenshot: Any
) -> None:
    a = committed.a
    channel = _webchat_channel(committed, live_server_url)
    seat = committed.seat(a, "Ada Lovelace")
    committed.canned(a, "thanks", "Thanks for waiting, {{contact.name}}! Your order ships today.")
    visitor_context = browser.new_context(viewport={"width": 1280, "height": 800})
    operator_context = browser.new_context(viewport={"width": 1440, "height": 900})
    visitor = visitor_context.new_page()
    operator = operator_context.new_page()
    console: list[str] = []
    for name, page in (("visitor", visitor), ("operator", operator)):
        page.on("console", lambda message, name=name: console.append(f"{name}: {message.text}"))
        page.on(
            "websocket",
            lambda socket, name=name: (
                socket.on("framereceived", lambda f, name=name: console.append(f"{name} <- {f}")),
                socket.on("framesent", lambda f, name=name: console.append(f"{name} -> {f}")),
            ),
        )
        page.on(
            "response",
            lambda response, name=name: (
                console.append(f"{name}: {response.status} {response.url}")
                if response.status >= 400
                else None
            ),
        )
    try:
        # --- The visitor writes from the demo page, which embeds the real widget. ---
        visitor.goto(f"{live_server_url}/t/{a.slug}/chat-demo/")
        assert channel.channel_token in visitor.content(), "the demo page shows another channel"
        visitor.locator(f"{WIDGET} .launcher").click()
        box = visitor.locator(f"{WIDGET} textarea")
        box.fill("Hi, where is my order #1042?")
        box.press("Enter")
        visitor.locator(f"{WIDGET} .row.mine .bubble", has_text="order #1042").wait_for()
        conversation = _visitor_conversation(a.slug, channel)

        # --- The operator signs in through the tenant admin's login. ---
        operator.goto(f"{live_server_url}/t/{a.slug}/inbox/")
        assert "/admin/login/" in operator.url
        operator.fill("#id_username", seat.username)
        operator.fill("#id_password", PASSWORD)
        operator.locator("input[type=submit]").click()
        operator.wait_for_url(re.compile(rf"/t/{a.slug}/inbox/"))
        operator.locator("[data-connection].is-live").wait_for()
        row = operator.locator(f'[data-row="{conversation.pk}"]')
        row.wait_for()
        assert row.locator(".chip--ai").count() == 1
        assert "order #1042" in row.inner_text()
        screenshot(operator, "01-inbox-list")

        row.locator("a").click()
        operator.wait_for_url(re.compile(rf"/inbox/c/{conversation.pk}/"))
        operator.locator(".msg--in", has_text="order #1042").wait_for()
        operator.locator(".conversation[data-subscribed]").wait_for()

        # The visitor types: the operator sees it.
        box.press_sequentially("I ordered on Monday", delay=20)
        operator.locator("[data-typing]:not([hidden])", has_text="is typing").wait_for()
        screenshot(operator, "02-visitor-typing")
        box.fill("")

        # A handoff notification arrives live.
        _elsewhere(
            a.slug,
            lambda: notification_create(
                kind="handoff",
                title="A customer asks for a person",
                body="Order question on the website chat",
                conversation_id=conversation.pk,
            ),
        )
        operator.locator(".toast", has_text="asks for a person").wait_for()
        operator.locator("[data-bell-badge]:not([hidden])").wait_for()

        # --- Take over from the AI. ---
        operator.locator("[data-take-over]").click()
        operator.locator(".who--human", has_text="You are answering").wait_for()
        with schema_context(a.slug):
            conversation.refresh_from_db()
        assert conversation.ai_active is False
        assert str(conversation.assignee_id) == seat.operator_id
        visitor.locator(f"{WIDGET} header p", has_text="Ada Lovelace").wait_for()

        # A private note: operators only.
        composer = operator.locator("[data-composer-text]")
        operator.locator('[data-mode="note"]').click()
        composer.fill("Order #1042 left the warehouse this morning.")
        composer.press("Enter")
        operator.locator(".msg--note:not(.is-sending)", has_text="warehouse").wait_for()

        # The operator types: the visitor sees the typing indicator.
        operator.locator('[data-mode="reply"]').click()
        composer.press_sequentially("/tha", delay=30)
        operator.locator(".canned-item", has_text="/thanks").wait_for()
        visitor.locator(f"{WIDGET} .typing:not([hidden])", has_text="Ada Lovelace").wait_for()
        screenshot(visitor, "03-visitor-sees-operator-typing")
        screenshot(operator, "04-canned-response-menu")
        composer.press("Enter")  # picks the canned response
        assert composer.input_value().startswith("Thanks for waiting")
        composer.press("Enter")  # sends it
        operator.locator(".msg--operator:not(.is-sending)", has_text="ships today").wait_for()

        # --- The visitor sees the reply, never the note. ---
        visitor.locator(f"{WIDGET} .row.theirs .bubble", has_text="ships today").wait_for()
        assert "warehouse" not in visitor.locator(WIDGET).inner_text()
        screenshot(visitor, "05-visitor-sees-reply")
        screenshot(operator, "06-operator-replied")
        operator.locator("[data-bell]").click()
        operator.locator("[data-notifications]:not([hidden])").wait_for()
        screenshot(operator, "06b-notifications")
        operator.locator(".notification-button", has_text="asks for a person").click()
        operator.locator("[data-bell-badge][hidden]").wait_for(state="attached")

        # On a phone the inbox shows one pane at a time.
        operator.set_viewport_size({"width": 390, "height": 844})
        screenshot(operator, "06c-operator-on-a-phone")
        operator.locator("[data-back]").click()
        operator.locator(f'[data-row="{conversation.pk}"]').wait_for()
        screenshot(operator, "06d-operator-list-on-a-phone")

        # --- The visitor reloads: the thread is intact, in order. ---
        visitor.reload()
        visitor.locator(f"{WIDGET} .launcher").wait_for()
        if visitor.locator(f"{WIDGET} .panel[hidden]").count():
            visitor.locator(f"{WIDGET} .launcher").click()
        reply = visitor.locator(f"{WIDGET} .row.theirs .bubble", has_text="ships today")
        reply.wait_for()
        bubbles = visitor.locator(f"{WIDGET} .bubble").all_inner_texts()
        asked = next(i for i, text in enumerate(bubbles) if "order #1042" in text)
        answered = next(i for i, text in enumerate(bubbles) if "ships today" in text)
        assert asked < answered
        assert not [text for text in bubbles if "warehouse" in text]
        screenshot(visitor, "07-visitor-after-reload")

        with schema_context(a.slug):
            thread = list(
                Message.objects.filter(conversation=conversation)
                .order_by("seq")
                .values_list("sender_type", "is_private")
            )
        assert thread == [("contact", False), ("operator", True), ("operator", False)]
    except Exception:
        screenshot(visitor, "failed-visitor")
        screenshot(operator, "failed-operator")
        print("\n".join(console))
        raise
    finally:
        visitor_context.close()
        operator_context.close()
