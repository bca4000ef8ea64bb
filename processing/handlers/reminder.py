"""`reminder`: create, cancel, snooze and list reminders in plain language; each is delivered
later as a message on the conversation's channel (automation.services.reminder_deliver).

With an LLM the request is read by one structured-output call (times resolved in the contact's
time zone); without one, or when it fails or answers nonsense, a small parser reads "in 10
minutes", "tomorrow at 9", "at 5pm", "on friday", "cancel my reminder", "snooze 15 minutes".
Only a reply that cost LLM tokens is billed.
"""

from __future__ import annotations

import datetime
import logging
import zoneinfo

from django.utils import timezone

from agents.llm import LlmUnavailable, llm_configured, llm_structured
from agents.models import LlmCall
from automation import parsing
from automation.parsing import CANCEL, CREATE, LIST, SNOOZE, ReminderRequest
from automation.selectors import conversation_timezone, reminder_list
from automation.services import (
    ReminderRefused,
    reminder_cancel,
    reminder_create,
    reminder_snooze,
)
from processing.handlers.base import HandlerContext, HandlerResult, handler, text_reply

logger = logging.getLogger(__name__)

HELP_TEXT = (
    "I can set reminders for you, e.g. “remind me to call Ana tomorrow at 9” or “in 10 "
    "minutes check the oven”. You can also cancel or snooze them, or ask for your reminders."
)
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "action": {"type": "string", "enum": [CREATE, CANCEL, SNOOZE, LIST, "unclear"]},
        "text": {"type": "string", "description": "What to remind about, short; empty if none."},
        "due_at": {
            "type": "string",
            "description": "For create: local date and time, ISO 8601 (YYYY-MM-DDTHH:MM); "
            "else empty.",
        },
        "snooze_minutes": {"type": "integer", "description": "For snooze; 0 if not said."},
        "all": {"type": "boolean", "description": "For cancel: every reminder."},
    },
    "required": ["action", "text", "due_at", "snooze_minutes", "all"],
}


def _when(moment: datetime.datetime, zone: zoneinfo.ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a %d %b} at {local:%H:%M} ({zone.key})"


def _from_llm(
    ctx: HandlerContext, now: datetime.datetime
) -> tuple[ReminderRequest | None, bool, int]:
    """(request, every, tokens); a None request when the model could not tell."""
    data, usage = llm_structured(
        agent=ctx.agent,
        purpose=LlmCall.Purpose.EXTRACTION,
        schema_name="reminder_request",
        schema=SCHEMA,
        input_text=ctx.text,
        instructions=(
            "Read the customer's reminder request. It is now "
            f"{now:%Y-%m-%dT%H:%M} ({now:%A}) in the customer's time zone {now.tzinfo}; give "
            "due_at in that time zone."
        ),
    )
    tokens = usage.total_tokens
    action = data.get("action")
    every = bool(data.get("all"))
    if action == CREATE:
        try:
            due = datetime.datetime.fromisoformat(str(data.get("due_at", "")))
        except ValueError:
            return None, every, tokens
        if due.tzinfo is None:
            due = due.replace(tzinfo=now.tzinfo)
        return (
            ReminderRequest(action=CREATE, text=str(data.get("text", "")), due_at=due),
            every,
            tokens,
        )
    if action == SNOOZE:
        minutes = data.get("snooze_minutes")
        snooze = (
            datetime.timedelta(minutes=minutes)
            if isinstance(minutes, int) and minutes > 0
            else parsing.DEFAULT_SNOOZE
        )
        return ReminderRequest(action=SNOOZE, snooze=snooze), every, tokens
    if action in (CANCEL, LIST):
        return ReminderRequest(action=str(action)), every, tokens
    return None, every, tokens


def _understand(
    ctx: HandlerContext, now: datetime.datetime
) -> tuple[ReminderRequest | None, bool, int]:
    tokens = 0
    if llm_configured():
        try:
            request, every, tokens = _from_llm(ctx, now)
        except LlmUnavailable as unavailable:
            logger.warning("reminder not read by the LLM", extra={"reason": unavailable.reason})
        else:
            if request is not None:
                return request, every, tokens
    every = "all" in ctx.text.lower().split()
    return parsing.reminder_parse(ctx.text, now=now), every, tokens


def _act(
    ctx: HandlerContext, request: ReminderRequest, every: bool, zone: zoneinfo.ZoneInfo
) -> str:
    conversation = ctx.conversation
    if request.action == CREATE and request.due_at is not None:
        reminder = reminder_create(
            conversation=conversation,
            text=request.text,
            due_at=request.due_at,
            requested_by=ctx.message,
        )
        what = f" to {reminder.text}" if request.text else ""
        return f"Okay, I'll remind you{what} on {_when(reminder.due_at, zone)}."
    if request.action == CANCEL:
        cancelled = reminder_cancel(conversation=conversation, every=every, asked_by=ctx.message)
        if not cancelled:
            return "You have no reminders to cancel."
        if len(cancelled) == 1:
            return f"Cancelled your reminder “{cancelled[0].text}”."
        return f"Cancelled your {len(cancelled)} reminders."
    if request.action == SNOOZE:
        snoozed = reminder_snooze(
            conversation=conversation,
            by=request.snooze or parsing.DEFAULT_SNOOZE,
            asked_by=ctx.message,
        )
        if snoozed is None:
            return "There's no reminder to snooze."
        return f"Snoozed: I'll remind you “{snoozed.text}” on {_when(snoozed.due_at, zone)}."
    reminders = list(reminder_list(conversation_id=conversation.pk)[:10])
    if not reminders:
        return "You have no reminders."
    lines = [f"• {r.text} — {_when(r.due_at, zone)}" for r in reminders]
    return "Your reminders:\n" + "\n".join(lines)


@handler("reminder", calls_model=True)
def reminder(ctx: HandlerContext) -> HandlerResult:
    if ctx.message.content.get("type") == "reaction":
        return HandlerResult()
    zone = conversation_timezone(conversation=ctx.conversation)
    now = timezone.now().astimezone(zone)
    request, every, tokens = _understand(ctx, now)
    if request is None:
        text = HELP_TEXT
    else:
        try:
            text = _act(ctx, request, every, zone)
        except ReminderRefused as refused:
            text = str(refused.detail)
    return HandlerResult(replies=[text_reply(text)], tokens=tokens, billable=tokens > 0)
