"""hub.renderers.JSONRenderer writes what DRF's renderer writes, faster."""

from __future__ import annotations

import datetime
import uuid
from collections import OrderedDict
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.exceptions import ErrorDetail
from rest_framework.renderers import JSONRenderer as DrfJSONRenderer
from rest_framework.serializers import Serializer
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList

from hub.renderers import JSONRenderer
from tests.factories import ConversationFactory

UTC = datetime.UTC
SERIALIZER: Serializer[Any] = Serializer()
VALUES: list[Any] = [
    {"text": "olá — 你好 🙂", "quote": 'say "hi"\\n', "control": "a\tb\x01"},
    {"separators": "line\u2028paragraph\u2029end"},
    {"id": uuid.UUID("12345678-1234-5678-1234-567812345678")},
    {"utc": datetime.datetime(2026, 11, 22, 20, 0, tzinfo=UTC)},
    {"micro": datetime.datetime(2026, 11, 22, 20, 0, 0, 123456, tzinfo=UTC)},
    {"lisbon": datetime.datetime(2026, 7, 1, 9, 30, tzinfo=ZoneInfo("Europe/Lisbon"))},
    {"naive": datetime.datetime(2026, 11, 22, 20, 0)},  # noqa: DTZ001 (written as it is)
    {"date": datetime.date(2026, 11, 22), "time": datetime.time(9, 30, 5)},
    {"delta": datetime.timedelta(minutes=90)},
    {"amount": Decimal("12.50"), "float": 52.52, "int": -(2**63), "big": 2**64},
    {1: "an int key", "nested": [[], {}, (1, 2), None, True, False]},
    {"lazy": gettext_lazy("Not found."), "detail": ErrorDetail("Bad.", code="invalid")},
    ReturnDict({"a": ReturnList([OrderedDict(b=1)], serializer=SERIALIZER)}, serializer=SERIALIZER),
    [{"set": frozenset()}],
    "a bare string",
    [],
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_it_writes_the_bytes_drf_writes(value: Any) -> None:
    assert JSONRenderer().render(value) == DrfJSONRenderer().render(value)


def test_pretty_printing_on_request_and_nothing_for_none() -> None:
    value = {"a": [1, {"b": "c"}]}
    for accepted in ("application/json; indent=4", "application/json; indent=0"):
        assert JSONRenderer().render(value, accepted) == DrfJSONRenderer().render(value, accepted)
    assert b"\n    " in JSONRenderer().render(value, "application/json; indent=4")
    assert JSONRenderer().render(None) == b""


def test_what_drf_refuses_is_refused() -> None:
    with pytest.raises(TypeError):
        DrfJSONRenderer().render({"object": object()})
    with pytest.raises(TypeError):
        JSONRenderer().render({"object": object()})


def test_the_api_answers_through_it(tenant_a) -> None:
    with tenant_a.schema():
        ConversationFactory.create(contact__name="Zoë")
    response = tenant_a.client().get("/api/v1/conversations/")
    assert response.status_code == 200
    assert response.json()["results"][0]["contact"]["name"] == "Zoë"
    assert isinstance(response.accepted_renderer, JSONRenderer)
    assert response.content == DrfJSONRenderer().render(response.data)
