"""What an extractor answered, checked field by field against the tenant's schema.

A value that does not validate is dropped with a reason, never stored as if valid: emails must
be addresses, phone numbers are normalised to E.164 (`phonenumbers`), dates to YYYY-MM-DD,
numbers must be finite numbers, enums one of their values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from extraction.models import ExtractionField
from extraction.schema import FieldSpec

Type = ExtractionField.Type

MAX_STRING = 1000
# How much of a dropped value is kept to show why it was dropped.
MAX_DROPPED_VALUE = 200
NUMBER = re.compile(r"^-?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")
TRUE = {"true", "yes", "y", "1"}
FALSE = {"false", "no", "n", "0"}


class Invalid(Exception):
    """Why a value was dropped."""


@dataclass
class Validated:
    data: dict[str, Any] = field(default_factory=dict)
    confirmed: list[str] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("not a string")
    value = " ".join(value.split())
    if len(value) > MAX_STRING:
        raise Invalid(f"longer than {MAX_STRING} characters")
    return value


def _email(value: Any) -> str:
    text = _string(value)
    try:
        validate_email(text)
    except ValidationError:
        raise Invalid("not a valid email address") from None
    local, _, domain = text.rpartition("@")
    return f"{local}@{domain.lower()}"


def _phone(value: Any) -> str:
    text = _string(value)
    region = settings.HUB_EXTRACTION_DEFAULT_REGION.upper() or None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise Invalid(
            "not a phone number with a country code" if region is None else "not a phone number"
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise Invalid("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise Invalid("not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid("not a finite number")
        return int(value) if value.is_integer() else value
    if isinstance(value, str) and NUMBER.match(value.strip()):
        try:
            parsed = Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            raise Invalid("not a number") from None
        return int(parsed) if parsed == parsed.to_integral_value() else float(parsed)
    raise Invalid("not a number")


def _date(value: Any) -> str:
    text = _string(value)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise Invalid("not a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise Invalid("not a calendar date") from None


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise Invalid("not true or false")


def _enum(value: Any, allowed: Sequence[str]) -> str:
    text = _string(value)
    for candidate in allowed:
        if candidate.casefold() == text.casefold():
            return candidate
    raise Invalid(f"not one of {', '.join(allowed)}")


def value_validate(spec: FieldSpec, value: Any) -> Any:
    """The value normalised for its field's type; raises Invalid with the reason."""
    if spec.type == Type.EMAIL:
        return _email(value)
    if spec.type == Type.PHONE:
        return _phone(value)
    if spec.type == Type.NUMBER:
        return _number(value)
    if spec.type == Type.DATE:
        return _date(value)
    if spec.type == Type.BOOLEAN:
        return _boolean(value)
    if spec.type == Type.ENUM:
        return _enum(value, spec.enum_values)
    return _string(value)


def _shown(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_DROPPED_VALUE:
        return value[:MAX_DROPPED_VALUE] + "…"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return _shown(repr(value))


def answer_validate(fields: Sequence[FieldSpec], answer: dict[str, Any]) -> Validated:
    """Checks an extractor's `{field: {"value", "confirmed"}}` answer. Nulls and empty strings
    are "not found"; anything else either validates or is dropped with its reason."""
    result = Validated()
    for spec in fields:
        item = answer.get(spec.name)
        if item is None:
            continue
        if not isinstance(item, dict) or "value" not in item:
            result.dropped.append(
                {"field": spec.name, "value": _shown(item), "reason": "malformed answer"}
            )
            continue
        value = item["value"]
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            result.data[spec.name] = value_validate(spec, value)
        except Invalid as invalid:
            result.dropped.append(
                {"field": spec.name, "value": _shown(value), "reason": str(invalid)}
            )
            continue
        if item.get("confirmed") is True:
            result.confirmed.append(spec.name)
    return result


def data_diff(previous: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """What changed from one version's data to the next."""
    return {
        "added": {key: value for key, value in current.items() if key not in previous},
        "changed": {
            key: {"from": previous[key], "to": value}
            for key, value in current.items()
            if key in previous and previous[key] != value
        },
        "removed": {key: value for key, value in previous.items() if key not in current},
    }
