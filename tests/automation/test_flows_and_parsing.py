"""The pure parts: assessment definitions and answers, ratings, reminder and task requests."""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Any

import pytest

from automation import flows
from automation.parsing import rating_parse, reminder_parse, task_title, task_wants_status

LISBON = zoneinfo.ZoneInfo("Europe/Lisbon")


def _at(day: int, hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(2026, 3, day, hour, minute, tzinfo=LISBON)


# A Tuesday afternoon.
NOW = _at(10, 15, 30)


VALID: dict[str, Any] = {
    "questions": [
        {"id": "name", "text": "Name?", "type": "text"},
        {
            "id": "plan",
            "text": "Plan?",
            "type": "choice",
            "choices": [{"id": "a", "title": "A", "score": 1}, {"id": "b", "title": "B"}],
        },
    ],
    "completion": "Thanks {name}, {score} points ({outcome}).",
    "outcomes": [{"id": "low", "min_score": 0}],
}


def test_a_valid_definition_passes() -> None:
    assert flows.definition_validate(VALID) is VALID


@pytest.mark.parametrize(
    ("definition", "path"),
    [
        ([], "definition"),
        ({}, "questions"),
        ({"questions": []}, "questions"),
        ({**VALID, "extra": 1}, "definition"),
        ({"questions": [{"id": "Bad Id", "text": "x", "type": "text"}]}, "questions[0].id"),
        ({"questions": [{"id": "a", "text": "", "type": "text"}]}, "questions[0].text"),
        ({"questions": [{"id": "a", "text": "x", "type": "essay"}]}, "questions[0].type"),
        (
            {"questions": [{"id": "a", "text": "x", "type": "text"}] * 2},
            "questions[1].id",
        ),
        (
            {"questions": [{"id": "a", "text": "x", "type": "choice", "choices": [{"id": "1"}]}]},
            "questions[0].choices",
        ),
        (
            {
                "questions": [
                    {
                        "id": "a",
                        "text": "x",
                        "type": "choice",
                        "choices": [{"id": "1", "title": "One"}, {"id": "1", "title": "Uno"}],
                    }
                ]
            },
            "questions[0].choices[1].id",
        ),
        (
            {"questions": [{"id": "a", "text": "x", "type": "number", "min": 5, "max": 1}]},
            "questions[0].min",
        ),
        (
            {"questions": [{"id": "a", "text": "x", "type": "yes_no", "score": {"maybe": 1}}]},
            "questions[0].score",
        ),
        ({**VALID, "completion": "Hi {nobody}"}, "completion"),
        ({**VALID, "completion": "Hi {name.__class__}"}, "completion"),
        ({**VALID, "completion": "Hi {name:>999999}"}, "completion"),
        ({**VALID, "completion": "Hi {name"}, "completion"),
        ({**VALID, "outcomes": [{"id": "x"}]}, "outcomes[0].min_score"),
        ({**VALID, "max_invalid_answers": 0}, "max_invalid_answers"),
    ],
)
def test_an_invalid_definition_names_the_problem(definition: Any, path: str) -> None:
    with pytest.raises(flows.DefinitionError) as raised:
        flows.definition_validate(definition)
    assert path in raised.value.errors


@pytest.mark.parametrize(
    ("question", "text", "value"),
    [
        ({"type": "number"}, "3,5", 3.5),
        ({"type": "number", "integer": True}, "12", 12),
        ({"type": "yes_no"}, "Yes.", True),
        ({"type": "yes_no"}, "não", False),
        ({"type": "email"}, "Ana@Example.com", "ana@example.com"),
        ({"type": "phone"}, "+351 912-345-678", "+351912345678"),
        ({"type": "date"}, "14/03/2026", "2026-03-14"),
        ({"type": "date"}, "2026-03-14", "2026-03-14"),
        ({"type": "text"}, "  Ana  ", "Ana"),
    ],
)
def test_answers_are_read_by_type(question: dict[str, Any], text: str, value: Any) -> None:
    assert flows.answer_parse(question, text).value == value


@pytest.mark.parametrize(
    ("question", "text", "message"),
    [
        ({"type": "number"}, "nan", "Please answer with a number."),
        ({"type": "number", "integer": True}, "1.5", "Please answer with a whole number."),
        (
            {"type": "number", "min": 1, "max": 9},
            "10",
            "Please answer with a number between 1 and 9.",
        ),
        ({"type": "yes_no"}, "perhaps", "Please answer yes or no."),
        ({"type": "email"}, "ana@", "Please answer with an email address such as ana@example.com."),
        (
            {"type": "date"},
            "31/02/2026",
            "Please answer with a date such as 2026-03-14 or 14/03/2026.",
        ),
        ({"type": "text", "max_length": 3}, "Anabela", "Please answer in 1 to 3 characters."),
        ({"type": "text", "error": "Just your first name."}, "x" * 600, "Just your first name."),
        ({"type": "text"}, "   ", "Please answer the question."),
    ],
)
def test_a_bad_answer_says_what_would_do(question: dict[str, Any], text: str, message: str) -> None:
    with pytest.raises(flows.InvalidAnswer, match="^" + message.replace(".", r"\.") + "$"):
        flows.answer_parse(question, text)


def test_a_choice_is_taken_by_number_id_or_title() -> None:
    question = VALID["questions"][1]
    assert [flows.answer_parse(question, t).value for t in ("1", "b", "a", " A ")] == [
        "a",
        "b",
        "a",
        "a",
    ]
    assert flows.answer_parse(question, "1").score == 1
    with pytest.raises(flows.InvalidAnswer, match=r"1\. A, 2\. B"):
        flows.answer_parse(question, "C")


def test_many_choices_are_asked_as_a_list_and_optional_questions_say_skip() -> None:
    choices = [{"id": str(n), "title": f"Option {n}"} for n in range(5)]
    prompt = flows.question_prompt(
        {"id": "q", "text": "Pick", "type": "choice", "choices": choices}, position=2, total=4
    )
    assert prompt["type"] == "list"
    assert prompt["text"] == "(2/4) Pick"
    assert prompt["sections"][0]["rows"] == choices
    optional = flows.question_prompt(
        {"id": "e", "text": "Email?", "type": "email", "required": False}, position=1, total=1
    )
    assert optional == {"type": "text", "text": "(1/1) Email? (or type skip)"}


def test_the_completion_fills_answers_score_and_outcome() -> None:
    text = flows.completion_text(VALID, answers={"name": "Ana"}, score=2.0, outcome="low")
    assert text == "Thanks Ana, 2 points (low)."
    assert flows.outcome_for(
        {"outcomes": [{"id": "a", "min_score": 0}, {"id": "b", "min_score": 3}]}, 3
    ) == {
        "id": "b",
        "min_score": 3,
    }


# --- Ratings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("5", 5),
        ("4/5", 4),
        ("3 out of 5", 3),
        ("2 stars", 2),
        ("I'd rate it 4", 4),
        ("⭐⭐⭐⭐", 4),
        ("👍", 5),
        ("👍🏾", 5),
        ("👎", 1),
        ("😐", 3),
        ("❤️", 5),
    ],
)
def test_ratings_are_read(text: str, score: int) -> None:
    rating = rating_parse(text)
    assert rating is not None
    assert rating.score == score


@pytest.mark.parametrize("text", ["", "6", "10/10", "great service", "👍 but slow", "🍕"])
def test_what_is_not_a_rating_is_not_read_as_one(text: str) -> None:
    assert rating_parse(text) is None


# --- Reminders -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "what", "due"),
    [
        ("Remind me to call Ana in 10 minutes", "call Ana", NOW + datetime.timedelta(minutes=10)),
        ("in an hour check the oven", "check the oven", NOW + datetime.timedelta(hours=1)),
        ("remind me in half an hour to stretch", "stretch", NOW + datetime.timedelta(minutes=30)),
        (
            "Remind me tomorrow at 9 to pay rent",
            "pay rent",
            _at(11, 9),
        ),
        (
            "remind me at 5pm to leave",
            "leave",
            _at(10, 17),
        ),
        # A time already past today is tomorrow's.
        ("at 10:30 standup", "standup", _at(11, 10, 30)),
        (
            "on friday at 14h00 send the report",
            "send the report",
            _at(13, 14),
        ),
        (
            "remind me about the dentist tonight",
            "the dentist",
            _at(10, 20),
        ),
        (
            "remind me next tuesday to renew",
            "renew",
            _at(17, 9),
        ),
    ],
)
def test_reminder_requests_are_read(text: str, what: str, due: datetime.datetime) -> None:
    request = reminder_parse(text, now=NOW)
    assert request is not None
    assert (request.action, request.text, request.due_at) == ("create", what, due)


def test_relative_times_count_real_time_across_a_clock_change() -> None:
    # Lisbon's clocks go forward at 01:00 UTC on 29 March 2026.
    before = _at(29, 0, 30)
    request = reminder_parse("in 2 hours call home", now=before)
    assert request is not None
    assert request.due_at is not None
    # (Aware datetimes of one zone subtract by the wall clock; UTC tells the real time.)
    elapsed = request.due_at.astimezone(datetime.UTC) - before.astimezone(datetime.UTC)
    assert elapsed == datetime.timedelta(hours=2)
    assert (request.due_at.hour, request.due_at.minute) == (3, 30)


@pytest.mark.parametrize(
    ("text", "action", "snooze"),
    [
        ("cancel my reminder", "cancel", None),
        ("please delete the reminders", "cancel", None),
        ("snooze", "snooze", datetime.timedelta(minutes=10)),
        ("snooze it for 15 minutes", "snooze", datetime.timedelta(minutes=15)),
        ("what are my reminders?", "list", None),
    ],
)
def test_reminder_commands_are_read(text: str, action: str, snooze: Any) -> None:
    request = reminder_parse(text, now=NOW)
    assert request is not None
    assert (request.action, request.snooze) == (action, snooze)


@pytest.mark.parametrize("text", ["", "hello", "remind me about the thing", "at 25:00 nap"])
def test_a_request_without_a_time_is_not_guessed(text: str) -> None:
    assert reminder_parse(text, now=NOW) is None


# --- Tasks ---------------------------------------------------------------------------------


def test_task_requests_are_titled_and_status_questions_recognised() -> None:
    assert task_title("Hi, I need someone to call me back about my invoice. Thanks") == (
        "Call me back about my invoice"
    )
    assert task_title("Could you send me a new charger?") == "Send me a new charger"
    assert task_title("!!!") == "Request from a contact"
    assert task_wants_status("any news on my ticket?")
    assert task_wants_status("status?")
    assert not task_wants_status("I need a refund")
