"""The bench's fake model (bench/fakes.py) answers each structured call as its schema asks, so a
bench run measures the hub's extractions, summaries, reminders and tasks, not their failures."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agents.llm import _parse_object
from bench.fakes import _structured_answer
from extraction.models import ExtractionField
from extraction.schema import FieldSpec, extraction_json_schema
from processing.context import SUMMARY_SCHEMA
from processing.handlers.reminder import SCHEMA as REMINDER_SCHEMA
from processing.handlers.task import SCHEMA as TASK_SCHEMA

LEAD_SCHEMA = extraction_json_schema(
    [
        FieldSpec(name=kind.value, type=kind.value, enum_values=("a", "b"))
        for kind in ExtractionField.Type
    ]
)


@pytest.mark.parametrize(
    ("name", "schema"),
    [
        ("lead", LEAD_SCHEMA),
        ("summary", SUMMARY_SCHEMA),
        ("reminder_request", REMINDER_SCHEMA),
        ("task_request", TASK_SCHEMA),
    ],
)
def test_a_structured_call_gets_an_answer_its_schema_accepts(
    name: str, schema: dict[str, Any]
) -> None:
    answer = _structured_answer("json_schema", {"name": name, "schema": schema})
    assert answer is not None
    data = _parse_object(answer, schema)
    assert set(data) == set(schema["properties"])


def test_routing_keeps_the_suites_intent_answer_and_plain_calls_their_text() -> None:
    assert _structured_answer("json_schema", {"name": "intent", "schema": {}}) is None
    assert _structured_answer(None, {}) is None
    lead = json.loads(
        _structured_answer("json_schema", {"name": "lead", "schema": LEAD_SCHEMA}) or ""
    )
    assert all(item == {"value": None, "confirmed": False} for item in lead.values())
