"""The offline extractor, used without `OPENAI_API_KEY`: emails, phone numbers and names found
in what the customer wrote. Its answer has the model's shape and goes through the same
validation; everything it finds the customer wrote themselves, so it is confirmed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from extraction.models import ExtractionField
from extraction.schema import FieldSpec
from extraction.validation import Invalid, value_validate

Type = ExtractionField.Type

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
PHONE = re.compile(r"(?<![\w+])\+?\d[\d\s().-]{5,18}\d(?!\w)")
NAME_WORD = r"[A-Z][a-zA-Z'\u00c0-\u017f-]+"
NAME = re.compile(
    r"(?i:\bmy name is|\bmy name's|\bname:|\bthis is|\bi am|\bi'm|\bcall me)\s+"
    rf"({NAME_WORD}(?:\s+{NAME_WORD}){{0,2}})"
)
# Capitalised words that follow "I'm" or "This is" without being names.
NOT_NAMES = {
    "A",
    "An",
    "The",
    "It",
    "Interested",
    "Looking",
    "Here",
    "Great",
    "Good",
    "Fine",
    "Not",
    "Just",
    "Sorry",
    "Happy",
    "Glad",
    "Ok",
    "Okay",
    "Urgent",
    "Still",
    "Also",
    "From",
    "In",
    "On",
    "At",
    "With",
    "Writing",
    "Calling",
    "Trying",
    "Hoping",
    "Asking",
}


def _last_valid(spec: FieldSpec, candidates: list[str]) -> str | None:
    # The latest mention wins: a customer correcting a typo writes the right one last.
    for candidate in reversed(candidates):
        try:
            return str(value_validate(spec, candidate))
        except Invalid:
            continue
    return None


def _name(texts: Sequence[str]) -> str | None:
    found = None
    for text in texts:
        for match in NAME.finditer(text):
            words = match.group(1).split()
            if words[0] not in NOT_NAMES:
                found = " ".join(words)
    return found


def rules_extract(fields: Sequence[FieldSpec], customer_texts: Sequence[str]) -> dict[str, Any]:
    """`{field: {"value", "confirmed"}}` for the first email field, the first phone field and a
    string field named `name`; every other field is null."""
    joined = "\n".join(customer_texts)
    answer: dict[str, Any] = {spec.name: {"value": None, "confirmed": False} for spec in fields}
    email = next((spec for spec in fields if spec.type == Type.EMAIL), None)
    phone = next((spec for spec in fields if spec.type == Type.PHONE), None)
    name = next((s for s in fields if s.name == "name" and s.type == Type.STRING), None)
    if email:
        answer[email.name] = {"value": _last_valid(email, EMAIL.findall(joined)), "confirmed": True}
    if phone:
        answer[phone.name] = {"value": _last_valid(phone, PHONE.findall(joined)), "confirmed": True}
    if name:
        answer[name.name] = {"value": _name(customer_texts), "confirmed": True}
    return answer
