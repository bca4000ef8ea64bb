"""Small deterministic readers of what contacts type, for when no LLM is configured (or it
fails): ratings ("4", "4/5", "⭐⭐⭐", "👍"), reminder requests ("remind me to call Ana tomorrow at
9", "in 10 minutes", "cancel my reminder", "snooze 15 minutes") and task requests. Pure
functions of the text and the time."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

# --- Ratings -------------------------------------------------------------------------------

EMOJI_SCORES = {
    "👍": 5, "❤️": 5, "❤": 5, "😍": 5, "🥰": 5, "😀": 5, "😃": 5, "😄": 5, "🤩": 5, "👏": 5,
    "🙂": 4, "😊": 4, "👌": 4,
    "😐": 3, "😶": 3, "🤔": 3,
    "🙁": 2, "😕": 2, "😞": 2, "😒": 2,
    "👎": 1, "😡": 1, "😠": 1, "🤬": 1, "😢": 1, "😭": 1,
}  # fmt: skip
STAR = re.compile(r"^(?:⭐|★|\*)\s*(?:(?:⭐|★|\*)\s*){0,4}$")
SCORE = re.compile(
    r"^(?:i(?:'d| would)? (?:rate|give)(?: (?:it|you|this))? )?([1-5])"
    r"(?:\s*(?:/|out of|of)\s*5)?(?:\s*stars?)?[.!]?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Rating:
    score: int
    raw: str


def rating_parse(text: str) -> Rating | None:
    """A 1-5 rating in a short message: a digit ("4", "4/5", "4 stars"), stars, or one emoji
    (variation selectors and skin tones ignored). None for anything else."""
    cleaned = text.strip()
    if not cleaned or len(cleaned) > 40:
        return None
    match = SCORE.match(cleaned)
    if match:
        return Rating(score=int(match.group(1)), raw=cleaned[:50])
    if STAR.match(cleaned):
        return Rating(score=sum(cleaned.count(star) for star in "⭐★*"), raw=cleaned[:50])
    emoji = re.sub(r"[\ufe0f\U0001f3fb-\U0001f3ff\s]", "", cleaned)
    for candidate in (emoji, emoji[:1]):
        if candidate in EMOJI_SCORES and (candidate == emoji or len(set(emoji)) == 1):
            return Rating(score=EMOJI_SCORES[candidate], raw=cleaned[:50])
    return None


def sentiment_of(score: int) -> str:
    return "positive" if score >= 4 else "neutral" if score == 3 else "negative"


# --- Reminders -----------------------------------------------------------------------------

CREATE, CANCEL, SNOOZE, LIST = "create", "cancel", "snooze", "list"

NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "fifteen": 15, "twenty": 20, "thirty": 30,
    "forty-five": 45, "half an": 0.5,
}  # fmt: skip
UNITS = {
    "second": 1, "sec": 1, "minute": 60, "min": 60, "hour": 3600, "hr": 3600, "day": 86400,
    "week": 604800,
}  # fmt: skip
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_AMOUNT = "(\\d{1,4}(?:[.,]\\d+)?|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + ")"
_UNIT = r"(seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?)"
_TIME = r"(\d{1,2})(?:[:h.](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?"

RELATIVE = re.compile(rf"\b(?:in|after)\s+{_AMOUNT}\s+{_UNIT}\b", re.IGNORECASE)
DAY_AT = re.compile(
    rf"\b(today|tonight|tomorrow|(?:on\s+|next\s+)?(?:{'|'.join(WEEKDAYS)}))"
    rf"(?:\s+(?:at|@)\s*{_TIME})?",
    re.IGNORECASE,
)
AT_TIME = re.compile(rf"(?:\bat|@)\s*{_TIME}(?=\W|$)", re.IGNORECASE)
SNOOZE_FOR = re.compile(
    rf"\bsnooze\b(?:\s+(?:it|that|this))?(?:\s+(?:for\s+)?{_AMOUNT}\s+{_UNIT})?", re.IGNORECASE
)
CANCEL_WORDS = re.compile(
    r"\b(cancel|delete|remove|forget|stop)\b.*\breminders?\b|\breminders?\b.*\b(cancel|off)\b",
    re.IGNORECASE,
)
LIST_WORDS = re.compile(
    r"\b(list|show|what(?:'s| are)?|which|my)\b.*\breminders\b|^reminders\??$", re.IGNORECASE
)
PREFIX = re.compile(
    r"^\s*(?:(?:please|pls|hey|hi|ok)[,\s]+)*(?:can you\s+|could you\s+|would you\s+)?"
    r"(?:remind|reminder|ping|notify|tell)\s+(?:me\s+)?(?:to\s+|about\s+|that\s+|of\s+)?",
    re.IGNORECASE,
)
DEFAULT_SNOOZE = datetime.timedelta(minutes=10)
MORNING = datetime.time(9, 0)
EVENING = datetime.time(20, 0)


@dataclass(frozen=True)
class ReminderRequest:
    action: str
    text: str = ""
    due_at: datetime.datetime | None = None
    snooze: datetime.timedelta | None = None


def _amount(word: str) -> float:
    word = word.lower()
    if word in NUMBER_WORDS:
        return float(NUMBER_WORDS[word])
    return float(word.replace(",", "."))


def _unit_seconds(unit: str) -> int:
    unit = unit.lower().rstrip("s") or "s"
    return UNITS.get(unit, UNITS.get(unit[:3], 60))


def _clock(hour: str, minute: str | None, meridiem: str | None) -> datetime.time | None:
    h, m = int(hour), int(minute or 0)
    suffix = (meridiem or "").lower().replace(".", "")
    if suffix == "pm" and h < 12:
        h += 12
    elif suffix == "am" and h == 12:
        h = 0
    if not (0 <= h <= 23 and 0 <= m <= 59):
        return None
    return datetime.time(h, m)


def _day_at(match: re.Match[str], now: datetime.datetime) -> datetime.datetime | None:
    day_word = match.group(1).lower().split()[-1]
    clock = _clock(match.group(2), match.group(3), match.group(4)) if match.group(2) else None
    if match.group(2) and clock is None:
        return None
    today = now.date()
    if day_word == "today":
        date, default = today, None
    elif day_word == "tonight":
        date, default = today, EVENING
    elif day_word == "tomorrow":
        date, default = today + datetime.timedelta(days=1), MORNING
    else:
        ahead = (WEEKDAYS.index(day_word) - today.weekday()) % 7 or 7
        date, default = today + datetime.timedelta(days=ahead), MORNING
    when = clock or default
    if when is None:
        return None
    return datetime.datetime.combine(date, when, tzinfo=now.tzinfo)


def reminder_parse(text: str, *, now: datetime.datetime) -> ReminderRequest | None:
    """What a reminder request asks for, with times in `now`'s time zone; None when the
    message holds no action or no time this reader understands."""
    cleaned = " ".join(text.split())
    if not cleaned:
        return None
    snooze = SNOOZE_FOR.search(cleaned)
    if snooze:
        if snooze.group(1):
            seconds = _amount(snooze.group(1)) * _unit_seconds(snooze.group(2))
            return ReminderRequest(action=SNOOZE, snooze=datetime.timedelta(seconds=seconds))
        return ReminderRequest(action=SNOOZE, snooze=DEFAULT_SNOOZE)
    if CANCEL_WORDS.search(cleaned):
        return ReminderRequest(action=CANCEL)
    if LIST_WORDS.search(cleaned) and not RELATIVE.search(cleaned):
        return ReminderRequest(action=LIST)
    due: datetime.datetime | None = None
    spans: list[tuple[int, int]] = []
    relative = RELATIVE.search(cleaned)
    if relative:
        seconds = _amount(relative.group(1)) * _unit_seconds(relative.group(2))
        # In UTC: "in 2 hours" across a daylight-saving change is still two hours.
        due = (now.astimezone(datetime.UTC) + datetime.timedelta(seconds=seconds)).astimezone(
            now.tzinfo
        )
        spans.append(relative.span())
    else:
        day = DAY_AT.search(cleaned)
        if day:
            due = _day_at(day, now)
            spans.append(day.span())
        else:
            at = AT_TIME.search(cleaned)
            clock = _clock(at.group(1), at.group(2), at.group(3)) if at else None
            if at and clock:
                due = datetime.datetime.combine(now.date(), clock, tzinfo=now.tzinfo)
                if due <= now:
                    due += datetime.timedelta(days=1)
                spans.append(at.span())
    if due is None:
        return None
    rest = cleaned
    for start, end in sorted(spans, reverse=True):
        rest = rest[:start] + " " + rest[end:]
    rest = PREFIX.sub("", " ".join(rest.split())).strip(" ,.!?;:-")
    return ReminderRequest(action=CREATE, text=rest[:500], due_at=due)


# --- Tasks ---------------------------------------------------------------------------------

TASK_STATUS_WORDS = re.compile(
    r"\b(status|update|progress|how is|how's|any news|what happened)\b.*"
    r"\b(request|task|ticket|case|order|it)\b|^status\??$",
    re.IGNORECASE,
)
TASK_PREFIX = re.compile(
    r"^\s*(?:(?:please|pls|hi|hello|hey)[,\s]+)*(?:i\s+(?:need|want|would like)\s+"
    r"(?:you\s+|someone\s+)?(?:to\s+)?|can\s+(?:you|someone)\s+|could\s+(?:you|someone)\s+|"
    r"please\s+)",
    re.IGNORECASE,
)


def task_wants_status(text: str) -> bool:
    return bool(TASK_STATUS_WORDS.search(" ".join(text.split())))


def task_title(text: str) -> str:
    """A short title for a request: its first sentence, politeness trimmed."""
    first = re.split(r"(?<=[.!?])\s|\n", text.strip(), maxsplit=1)[0]
    title = TASK_PREFIX.sub("", first).strip(" ,.!?;:-")
    title = title[:1].upper() + title[1:]
    return (title or "Request from a contact")[:200]
