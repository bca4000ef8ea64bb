"""Assessment flows as data: checking a tenant's definition, reading a contact's answer to one
question, and scoring a finished run. Pure functions; `automation.services` keeps the state.

A definition (docs/handlers.md):

    {
      "intro": "A few questions to find the right plan. Type stop to quit.",
      "questions": [
        {"id": "name", "text": "What is your name?", "type": "text", "max_length": 80},
        {"id": "seats", "text": "How many seats?", "type": "number", "integer": true, "min": 1},
        {"id": "channel", "text": "Main channel?", "type": "choice",
         "choices": [{"id": "wa", "title": "WhatsApp", "score": 2},
                     {"id": "mail", "title": "Email", "score": 0}]},
        {"id": "soon", "text": "Starting this month?", "type": "yes_no",
         "score": {"yes": 3, "no": 0}},
        {"id": "email", "text": "Your email?", "type": "email", "required": false}
      ],
      "outcomes": [
        {"id": "later", "min_score": 0, "text": "We'll send you our guide."},
        {"id": "ready", "min_score": 4, "text": "A specialist will call you.", "handoff": true}
      ],
      "completion": "Thank you, {name}! Your score is {score}."
    }
"""

from __future__ import annotations

import datetime
import re
import string
from dataclasses import dataclass
from typing import Any

QUESTION_TYPES = ("text", "number", "choice", "yes_no", "email", "phone", "date")
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
MAX_QUESTIONS = 50
MAX_CHOICES = 10
MAX_TITLE = 64
MAX_MESSAGE = 1000
MAX_ANSWER = 1000
DEFAULT_MAX_INVALID = 3

YES = {
    "yes",
    "y",
    "yeah",
    "yep",
    "sure",
    "ok",
    "okay",
    "true",
    "sim",
    "si",
    "sí",
    "oui",
    "ja",
    "👍",
}
NO = {"no", "n", "nope", "nah", "false", "não", "nao", "non", "nein", "👎"}
STOP_WORDS = {"stop", "cancel", "quit", "exit", "parar", "cancelar", "sair"}
SKIP_WORDS = {"skip", "pass", "pular", "next"}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class DefinitionError(Exception):
    """The definition is not a valid flow; `errors` maps a path to what is wrong there."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{path}: {error}" for path, error in errors.items()))
        self.errors = errors


def _text(value: Any, *, limit: int) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= limit


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_question(question: Any, path: str, errors: dict[str, str], seen: set[str]) -> None:
    if not isinstance(question, dict):
        errors[path] = "Must be an object with id, text and type."
        return
    allowed = {
        "id", "text", "type", "required", "min_length", "max_length", "min", "max",
        "integer", "choices", "score", "error",
    }  # fmt: skip
    if unknown := sorted(set(question) - allowed):
        errors[path] = f"Unknown key(s): {', '.join(unknown)}."
    qid = question.get("id")
    if not isinstance(qid, str) or not ID_PATTERN.match(qid):
        errors[f"{path}.id"] = "Lowercase letters, digits and _, starting with a letter."
    elif qid in seen:
        errors[f"{path}.id"] = f"Duplicate question id {qid!r}."
    else:
        seen.add(qid)
    if not _text(question.get("text"), limit=MAX_MESSAGE):
        errors[f"{path}.text"] = f"The question, 1 to {MAX_MESSAGE} characters."
    kind = question.get("type")
    if kind not in QUESTION_TYPES:
        errors[f"{path}.type"] = f"One of {', '.join(QUESTION_TYPES)}."
    if "required" in question and not isinstance(question["required"], bool):
        errors[f"{path}.required"] = "true or false."
    if "error" in question and not _text(question["error"], limit=MAX_MESSAGE):
        errors[f"{path}.error"] = f"A message of 1 to {MAX_MESSAGE} characters."
    for key in ("min_length", "max_length"):
        if key in question and (
            not isinstance(question[key], int)
            or isinstance(question[key], bool)
            or not 0 <= question[key] <= MAX_ANSWER
        ):
            errors[f"{path}.{key}"] = f"A whole number from 0 to {MAX_ANSWER}."
    for key in ("min", "max"):
        if key in question and not _number(question[key]):
            errors[f"{path}.{key}"] = "A number."
    if (
        _number(question.get("min"))
        and _number(question.get("max"))
        and question["min"] > question["max"]
    ):
        errors[f"{path}.min"] = "Must not be above max."
    if "integer" in question and not isinstance(question["integer"], bool):
        errors[f"{path}.integer"] = "true or false."
    if kind == "choice":
        _check_choices(question.get("choices"), f"{path}.choices", errors)
    elif "choices" in question:
        errors[f"{path}.choices"] = "Only a choice question has choices."
    if kind == "yes_no" and "score" in question:
        score = question["score"]
        if (
            not isinstance(score, dict)
            or set(score) - {"yes", "no"}
            or not all(_number(v) for v in score.values())
        ):
            errors[f"{path}.score"] = 'An object such as {"yes": 1, "no": 0}.'
    elif "score" in question and kind in QUESTION_TYPES:
        errors[f"{path}.score"] = "Only yes_no questions score here; choices carry their own."


def _check_choices(choices: Any, path: str, errors: dict[str, str]) -> None:
    if not isinstance(choices, list) or not 2 <= len(choices) <= MAX_CHOICES:
        errors[path] = f"A list of 2 to {MAX_CHOICES} choices."
        return
    ids: set[str] = set()
    for index, choice in enumerate(choices):
        where = f"{path}[{index}]"
        if not isinstance(choice, dict) or set(choice) - {"id", "title", "score"}:
            errors[where] = "An object with id, title and optionally score."
            continue
        if not _text(choice.get("id"), limit=200) or choice["id"] in ids:
            errors[f"{where}.id"] = "A unique, non-empty id."
        else:
            ids.add(choice["id"])
        if not _text(choice.get("title"), limit=MAX_TITLE):
            errors[f"{where}.title"] = f"1 to {MAX_TITLE} characters."
        if "score" in choice and not _number(choice["score"]):
            errors[f"{where}.score"] = "A number."


def definition_validate(definition: Any) -> dict[str, Any]:
    """Checks a flow definition; returns it unchanged, or raises DefinitionError naming every
    problem by its path (e.g. `questions[2].choices`)."""
    errors: dict[str, str] = {}
    if not isinstance(definition, dict):
        raise DefinitionError({"definition": "Must be an object with questions."})
    allowed = {"intro", "questions", "outcomes", "completion", "max_invalid_answers"}
    if unknown := sorted(set(definition) - allowed):
        errors["definition"] = f"Unknown key(s): {', '.join(unknown)}."
    questions = definition.get("questions")
    if not isinstance(questions, list) or not 1 <= len(questions) <= MAX_QUESTIONS:
        errors["questions"] = f"A list of 1 to {MAX_QUESTIONS} questions."
        questions = []
    seen: set[str] = set()
    for index, question in enumerate(questions):
        _check_question(question, f"questions[{index}]", errors, seen)
    for key in ("intro", "completion"):
        if key in definition and not _text(definition[key], limit=MAX_MESSAGE):
            errors[key] = f"A message of 1 to {MAX_MESSAGE} characters."
    if "completion" in definition and isinstance(definition["completion"], str):
        try:
            fields = [
                (name, spec, conversion)
                for _, name, spec, conversion in string.Formatter().parse(definition["completion"])
                if name is not None
            ]
        except ValueError:
            errors["completion"] = "Unbalanced { or }; write {{ and }} for braces."
        else:
            names = {name for name, _, _ in fields}
            if any(spec or conversion for _, spec, conversion in fields):
                errors["completion"] = "Placeholders are plain names such as {name}."
            elif unknown_names := sorted(names - seen - {"score", "outcome"}):
                errors["completion"] = (
                    f"Unknown placeholder(s): {', '.join(unknown_names)}. Use question ids, "
                    "score or outcome."
                )
    limit = definition.get("max_invalid_answers", DEFAULT_MAX_INVALID)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10:
        errors["max_invalid_answers"] = "A whole number from 1 to 10."
    outcomes = definition.get("outcomes", [])
    if not isinstance(outcomes, list) or len(outcomes) > 20:
        errors["outcomes"] = "A list of at most 20 outcomes."
        outcomes = []
    for index, outcome in enumerate(outcomes):
        where = f"outcomes[{index}]"
        if not isinstance(outcome, dict) or set(outcome) - {"id", "min_score", "text", "handoff"}:
            errors[where] = "An object with id, min_score, text and optionally handoff."
            continue
        if not isinstance(outcome.get("id"), str) or not ID_PATTERN.match(outcome["id"]):
            errors[f"{where}.id"] = "Lowercase letters, digits and _, starting with a letter."
        if not _number(outcome.get("min_score")):
            errors[f"{where}.min_score"] = "A number."
        if "text" in outcome and not _text(outcome["text"], limit=MAX_MESSAGE):
            errors[f"{where}.text"] = f"1 to {MAX_MESSAGE} characters."
        if "handoff" in outcome and not isinstance(outcome["handoff"], bool):
            errors[f"{where}.handoff"] = "true or false."
    if errors:
        raise DefinitionError(errors)
    return definition


# --- Running a flow ------------------------------------------------------------------------


class InvalidAnswer(Exception):
    """The answer does not fit the question; the message says what would."""


@dataclass(frozen=True)
class Answer:
    # What is stored: the text, a number, a choice id, a bool, or None when skipped.
    value: Any
    score: float = 0.0


def question_prompt(question: dict[str, Any], *, position: int, total: int) -> dict[str, Any]:
    """The canonical content that asks the question, with the progress; choices as buttons
    (a list beyond three, WhatsApp's button limit). Channels without buttons number them."""
    text = f"({position}/{total}) {question['text']}"
    if question["type"] == "choice":
        choices = [{"id": c["id"], "title": c["title"]} for c in question["choices"]]
        if len(choices) <= 3:
            return {"type": "buttons", "text": text, "buttons": choices}
        return {"type": "list", "text": text, "button": "Choose", "sections": [{"rows": choices}]}
    if question["type"] == "yes_no":
        return {
            "type": "buttons",
            "text": text,
            "buttons": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}],
        }
    if not question.get("required", True):
        text += " (or type skip)"
    return {"type": "text", "text": text}


def _fail(question: dict[str, Any], default: str) -> InvalidAnswer:
    return InvalidAnswer(question.get("error") or default)


def _number_answer(question: dict[str, Any], text: str) -> Answer:
    cleaned = text.replace(" ", "")
    if "," in cleaned and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        raise _fail(question, "Please answer with a number.") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise _fail(question, "Please answer with a number.")
    if question.get("integer"):
        if not value.is_integer():
            raise _fail(question, "Please answer with a whole number.")
        value = int(value)
    low, high = question.get("min"), question.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (
            f"between {low} and {high}"
            if low is not None and high is not None
            else f"at least {low}"
            if low is not None
            else f"at most {high}"
        )
        raise _fail(question, f"Please answer with a number {bounds}.")
    return Answer(value=value)


def _choice_answer(question: dict[str, Any], text: str) -> Answer:
    choices = question["choices"]
    wanted = text.strip().lower().rstrip(".")
    for index, choice in enumerate(choices, start=1):
        if wanted in {str(index), str(choice["id"]).lower(), choice["title"].strip().lower()}:
            return Answer(value=choice["id"], score=float(choice.get("score", 0)))
    titles = ", ".join(f"{i}. {c['title']}" for i, c in enumerate(choices, start=1))
    raise _fail(question, f"Please choose one of: {titles}.")


def _date_answer(question: dict[str, Any], text: str) -> Answer:
    cleaned = text.strip()
    for parse in (
        datetime.date.fromisoformat,
        lambda value: datetime.datetime.strptime(value, "%d/%m/%Y").date(),  # noqa: DTZ007
    ):
        try:
            return Answer(value=parse(cleaned).isoformat())
        except ValueError:
            continue
    raise _fail(question, "Please answer with a date such as 2026-03-14 or 14/03/2026.")


def answer_parse(question: dict[str, Any], text: str) -> Answer:
    """The contact's reply read as an answer to `question`; InvalidAnswer says why not."""
    text = text.strip()
    kind = question["type"]
    if not text:
        raise _fail(question, "Please answer the question.")
    if len(text) > MAX_ANSWER:
        raise _fail(question, f"Please answer in at most {MAX_ANSWER} characters.")
    if kind == "number":
        return _number_answer(question, text)
    if kind == "choice":
        return _choice_answer(question, text)
    if kind == "yes_no":
        word = text.lower().rstrip(".!")
        scores = question.get("score") or {}
        if word in YES:
            return Answer(value=True, score=float(scores.get("yes", 0)))
        if word in NO:
            return Answer(value=False, score=float(scores.get("no", 0)))
        raise _fail(question, "Please answer yes or no.")
    if kind == "email":
        if not EMAIL.match(text) or len(text) > 254:
            raise _fail(question, "Please answer with an email address such as ana@example.com.")
        return Answer(value=text.lower())
    if kind == "phone":
        digits = re.sub(r"[\s().-]", "", text)
        if not re.fullmatch(r"\+?\d{7,15}", digits):
            raise _fail(question, "Please answer with a phone number, e.g. +351 912 345 678.")
        return Answer(value=digits if digits.startswith("+") else f"+{digits}")
    if kind == "date":
        return _date_answer(question, text)
    low, high = question.get("min_length", 1), question.get("max_length", 500)
    if not low <= len(text) <= high:
        raise _fail(question, f"Please answer in {low} to {high} characters.")
    return Answer(value=text)


def outcome_for(definition: dict[str, Any], score: float) -> dict[str, Any] | None:
    """The outcome with the highest `min_score` the score reaches, if any."""
    reached = [o for o in definition.get("outcomes", []) if score >= o["min_score"]]
    return max(reached, key=lambda o: o["min_score"]) if reached else None


def completion_text(
    definition: dict[str, Any], *, answers: dict[str, Any], score: float, outcome: str
) -> str:
    """The closing message with its placeholders filled; a skipped answer reads as empty."""
    template = definition.get("completion") or "Thank you, that's all the questions."
    shown_score: int | float = int(score) if float(score).is_integer() else round(score, 2)
    values = {
        **{key: "" if value is None else value for key, value in answers.items()},
        "score": shown_score,
        "outcome": outcome,
    }
    return string.Formatter().vformat(template, (), _Missing(values))


class _Missing(dict[str, Any]):
    """Placeholders of questions never reached (a flow edited meanwhile) read as empty."""

    def __missing__(self, key: str) -> str:
        return ""
