"""The strict JSON schema one extraction asks the model for, built from the tenant's fields.

Every field answers `{"value": <typed or null>, "confirmed": bool}`: null when the conversation
does not say, `confirmed` when the customer stated or confirmed it themselves. Strict mode wants
every key required and no other keys, so "not found" is a null, never a missing key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from extraction.models import ExtractionField

Type = ExtractionField.Type


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    description: str = ""
    required: bool = False
    enum_values: tuple[str, ...] = ()

    @classmethod
    def of(cls, field: ExtractionField) -> FieldSpec:
        return cls(
            name=field.name,
            type=field.type,
            description=field.description,
            required=field.required,
            enum_values=tuple(field.enum_values),
        )


_VALUE_HINTS: dict[str, str] = {
    Type.EMAIL: "An email address.",
    Type.PHONE: "A phone number in international format with its country code, e.g. +14155552671.",
    Type.DATE: "A calendar date as YYYY-MM-DD.",
}


def _value_schema(field: FieldSpec) -> dict[str, Any]:
    if field.type == Type.NUMBER:
        schema: dict[str, Any] = {"type": ["number", "null"]}
    elif field.type == Type.BOOLEAN:
        schema = {"type": ["boolean", "null"]}
    elif field.type == Type.ENUM:
        schema = {"type": ["string", "null"], "enum": [*field.enum_values, None]}
    else:
        schema = {"type": ["string", "null"]}
    if field.type in _VALUE_HINTS:
        schema["description"] = _VALUE_HINTS[field.type]
    return schema


def extraction_json_schema(fields: Sequence[FieldSpec]) -> dict[str, Any]:
    properties = {
        field.name: {
            "type": "object",
            "additionalProperties": False,
            "description": field.description or field.name.replace("_", " "),
            "properties": {
                "value": _value_schema(field),
                "confirmed": {
                    "type": "boolean",
                    "description": "True only if the customer stated or confirmed it themselves.",
                },
            },
            "required": ["value", "confirmed"],
        }
        for field in fields
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": list(properties),
    }


def extraction_instructions(*, today: date) -> str:
    return (
        "You read a conversation between a customer and a business and extract the lead's "
        "details into the given fields. For each field give the value, or null when the "
        "conversation does not say it: never guess or invent. Set `confirmed` to true only "
        "when the customer wrote the value themselves or confirmed it when asked. When the "
        "customer corrected a value, give the corrected one. Write dates as YYYY-MM-DD; "
        f"today is {today.isoformat()}."
    )
