"""Cursors: whatever a client puts in one, a list answers 200 or 404 `Invalid cursor`, never a
500 from the database (hub/pagination.py)."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import pytest

from processing.models import RoutingRule
from tests.factories import ConversationFactory
from tests.support import error_of

WORD = "yesterday"
BEYOND_POSTGRES = "2026-01-01T00:00:00+20:00"  # an offset PostgreSQL refuses, an instant it keeps
PAST_9999 = "9999-12-31T23:59:59.999999-23:59"  # in UTC, a year Python cannot hold
NUL = "a\x00b"
HUGE = "99999999999999999999"
ID = "7d4f3f2e-9c1b-4b7a-8f0e-2a6c5d4e3b21"


def _cursor(position: str) -> str:
    return base64.b64encode(urlencode({"p": position}).encode()).decode()


@pytest.fixture
def conversation(tenant_a):
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        RoutingRule.objects.create(name="first", priority=1)
    return conversation


@pytest.mark.parametrize(
    ("path", "position", "status"),
    [
        ("/api/v1/contacts/", WORD, 404),
        ("/api/v1/contacts/", PAST_9999, 404),
        ("/api/v1/contacts/", NUL, 404),
        ("/api/v1/contacts/", BEYOND_POSTGRES, 200),
        ("/api/v1/routing-rules/", WORD, 404),
        ("/api/v1/routing-rules/", HUGE, 404),
        ("/api/v1/routing-rules/", "0", 200),
        ("/api/v1/intents/", NUL, 404),
        ("/api/v1/intents/", WORD, 200),  # ordered by name: a word is a position
        ("/api/v1/conversations/", f"{PAST_9999} {ID}", 404),
        ("/api/v1/conversations/", f"{BEYOND_POSTGRES} {ID}", 200),
        ("messages", HUGE, 404),
        ("messages", "-1", 404),
    ],
)
def test_a_cursor_is_a_page_or_invalid_never_an_error(
    tenant_a, conversation, path, position, status
) -> None:
    if path == "messages":
        path = f"/api/v1/conversations/{conversation.pk}/messages/"
    response = tenant_a.client().get(path, {"cursor": _cursor(position)})
    assert response.status_code == status, response.content
    if status == 404:
        assert error_of(response)["message"] == "Invalid cursor"
    else:
        assert set(response.json()) == {"results", "next"}
