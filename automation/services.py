"""Writes for the automation handlers: ratings, reminders, tasks and assessment runs.

Handlers run inside the processing transaction of the message they answer, so what they write
here commits with the reply and the processing cursor, or not at all.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from automation import flows
from automation.models import AssessmentFlow, AssessmentRun, CsatRating, Reminder, Task
from automation.parsing import sentiment_of
from automation.selectors import ASSESSMENT_IDLE
from conversations.models import Conversation, Message, Operator
from conversations.services.messages import message_send
from hub.exceptions import ApplicationError
from inbox.models import Notification
from inbox.services import notification_create

logger = logging.getLogger(__name__)

MAX_SCHEDULED_REMINDERS = 20
MIN_REMINDER_DELAY = datetime.timedelta(seconds=30)
MAX_REMINDER_DELAY = datetime.timedelta(days=366)
# Reminders due this soon also get a Celery task at their time; the minute job is the net.
PRECISE_DELIVERY_WITHIN = datetime.timedelta(minutes=55)


# --- Ratings -------------------------------------------------------------------------------


@transaction.atomic
def csat_record(
    *,
    message: Message,
    score: int,
    raw: str,
    rated_message: Message | None = None,
) -> CsatRating:
    """Stores the contact's rating carried by `message`. Idempotent per message; a new
    reaction on an already rated AI message replaces that rating."""
    if not 1 <= score <= 5:
        raise ValueError("A rating is 1 to 5.")
    values = {
        "conversation_id": message.conversation_id,
        "contact_id": message.sender_contact_id,
        "score": score,
        "sentiment": sentiment_of(score),
        "raw": raw[:50],
    }
    existing = CsatRating.objects.filter(message=message).first()
    if existing:
        return existing
    if rated_message is not None:
        rating, _ = CsatRating.objects.update_or_create(
            rated_message=rated_message, defaults={**values, "message": message}
        )
        return rating
    return CsatRating.objects.create(message=message, **values)


@transaction.atomic
def csat_withdraw(*, rated_message: Message) -> int:
    """A removed reaction takes its rating with it."""
    deleted, _ = CsatRating.objects.filter(rated_message=rated_message).delete()
    return deleted


# --- Reminders -----------------------------------------------------------------------------


class ReminderRefused(ApplicationError):
    default_code = "reminder_refused"


def _deliver_at_due_time(reminder: Reminder) -> None:
    if reminder.due_at - timezone.now() > PRECISE_DELIVERY_WITHIN:
        return
    reminder_id, due_at = str(reminder.pk), reminder.due_at

    def enqueue() -> None:
        from automation.tasks import reminder_deliver_task

        try:
            reminder_deliver_task.apply_async(args=[reminder_id], eta=due_at)
        except (RedisError, BrokerError, OSError) as error:
            logger.warning(
                "broker unavailable; the reminder job delivers it",
                extra={"error": type(error).__name__},
            )

    transaction.on_commit(enqueue)


def _check_due(due_at: datetime.datetime) -> None:
    now = timezone.now()
    if due_at < now + MIN_REMINDER_DELAY:
        raise ReminderRefused("That time has already passed; tell me a time in the future.")
    if due_at > now + MAX_REMINDER_DELAY:
        raise ReminderRefused("I can only set reminders up to a year ahead.")


@transaction.atomic
def reminder_create(
    *,
    conversation: Conversation,
    text: str,
    due_at: datetime.datetime,
    requested_by: Message | None = None,
) -> Reminder:
    """Schedules a reminder on the conversation's channel. ReminderRefused (with a message for
    the contact) for a time past or beyond a year, or past the cap of scheduled reminders."""
    if requested_by is not None:
        existing = Reminder.objects.filter(requested_by=requested_by).first()
        if existing:
            return existing
    _check_due(due_at)
    if (
        Reminder.objects.filter(conversation=conversation, status=Reminder.Status.SCHEDULED).count()
        >= MAX_SCHEDULED_REMINDERS
    ):
        raise ReminderRefused(
            f"You already have {MAX_SCHEDULED_REMINDERS} reminders; cancel one first."
        )
    reminder = Reminder.objects.create(
        conversation=conversation,
        text=" ".join(text.split())[:500] or "your reminder",
        due_at=due_at,
        requested_by=requested_by,
    )
    _deliver_at_due_time(reminder)
    return reminder


def _changed_by(conversation: Conversation, message: Message | None) -> list[Reminder]:
    """What `message` cancelled or snoozed when it was processed before."""
    if message is None:
        return []
    return list(Reminder.objects.filter(conversation=conversation, changed_by=message))


@transaction.atomic
def reminder_cancel(
    *, conversation: Conversation, every: bool = False, asked_by: Message | None = None
) -> list[Reminder]:
    """Cancels the conversation's next reminder (or all of them); returns what it cancelled.
    `asked_by`: the contact's message asking, which cancels once however often it is
    processed."""
    if done := _changed_by(conversation, asked_by):
        return done
    scheduled = Reminder.objects.select_for_update().filter(
        conversation=conversation, status=Reminder.Status.SCHEDULED
    )
    chosen = list(scheduled.order_by("due_at") if every else scheduled.order_by("due_at")[:1])
    Reminder.objects.filter(pk__in=[r.pk for r in chosen]).update(
        status=Reminder.Status.CANCELLED, changed_by=asked_by, updated_at=timezone.now()
    )
    return chosen


@transaction.atomic
def reminder_snooze(
    *, conversation: Conversation, by: datetime.timedelta, asked_by: Message | None = None
) -> Reminder | None:
    """Puts off the reminder last delivered here (within the hour) by `by`, or else the next
    one still to come. None when there is nothing to snooze. `asked_by`: the contact's
    message asking, which snoozes once however often it is processed."""
    if not MIN_REMINDER_DELAY <= by <= MAX_REMINDER_DELAY:
        raise ReminderRefused("I can snooze a reminder by 30 seconds up to a year.")
    if done := _changed_by(conversation, asked_by):
        return done[0]
    recent = (
        Reminder.objects.select_for_update()
        .filter(
            conversation=conversation,
            status=Reminder.Status.DELIVERED,
            delivered_at__gte=timezone.now() - datetime.timedelta(hours=1),
        )
        .order_by("-delivered_at")
        .first()
    )
    now = timezone.now()
    if recent is not None:
        recent.status = Reminder.Status.SCHEDULED
        recent.due_at = now + by
        recent.delivered_at = None
        recent.snoozed += 1
        recent.changed_by = asked_by
        recent.save(
            update_fields=[
                "status",
                "due_at",
                "delivered_at",
                "snoozed",
                "changed_by",
                "updated_at",
            ]
        )
        _deliver_at_due_time(recent)
        return recent
    upcoming = (
        Reminder.objects.select_for_update()
        .filter(conversation=conversation, status=Reminder.Status.SCHEDULED)
        .order_by("due_at")
        .first()
    )
    if upcoming is None:
        return None
    upcoming.due_at = max(upcoming.due_at, now) + by
    upcoming.snoozed += 1
    upcoming.changed_by = asked_by
    upcoming.save(update_fields=["due_at", "snoozed", "changed_by", "updated_at"])
    _deliver_at_due_time(upcoming)
    return upcoming


@transaction.atomic
def reminder_deliver(*, reminder_id: uuid.UUID | str) -> bool:
    """Sends a due reminder as a message on its conversation's channel, once: the row is locked
    (a second deliverer skips it) and the message's client id is unique per snooze. False when
    it is not due, no longer scheduled, or being delivered elsewhere."""
    reminder = (
        Reminder.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("conversation")
        .filter(pk=reminder_id, status=Reminder.Status.SCHEDULED, due_at__lte=timezone.now())
        .first()
    )
    if reminder is None:
        return False
    message, _ = message_send(
        conversation=reminder.conversation,
        content={"type": "text", "text": f"⏰ Reminder: {reminder.text}"},
        sender_type=Message.SenderType.AI,
        client_id=f"reminder:{reminder.pk}:{reminder.snoozed}",
    )
    reminder.status = Reminder.Status.DELIVERED
    reminder.delivered_message = message
    reminder.delivered_at = timezone.now()
    reminder.save(update_fields=["status", "delivered_message", "delivered_at", "updated_at"])
    return True


def reminders_deliver_due() -> dict[str, int]:
    """Delivers every due reminder of the current tenant, each in its own transaction."""
    from automation.selectors import reminder_ids_due

    delivered = sum(reminder_deliver(reminder_id=reminder_id) for reminder_id in reminder_ids_due())
    return {"delivered": delivered}


# --- Tasks ---------------------------------------------------------------------------------

TASK_FIELDS = {"title", "description", "status", "priority", "due_at", "assignee"}


def _task_notify_assignee(task: Task) -> None:
    if task.assignee_id is None:
        return
    notification_create(
        kind=Notification.Kind.TASK,
        title=f"Task assigned to you: {task.title}"[:200],
        body=task.description[:1000],
        conversation_id=task.conversation_id,
        operator_id=task.assignee_id,
    )


@transaction.atomic
def task_create(
    *,
    title: str,
    description: str = "",
    conversation: Conversation | None = None,
    contact_id: uuid.UUID | None = None,
    assignee: Operator | None = None,
    status: str = Task.Status.OPEN,
    priority: int = Task.Priority.NORMAL,
    due_at: datetime.datetime | None = None,
    requested_by: Message | None = None,
) -> Task:
    """A task for the team. Its assignee is notified, or, unassigned, every operator. A task
    requested by a message is created once however often the message is processed."""
    if requested_by is not None:
        existing = Task.objects.filter(requested_by=requested_by).first()
        if existing:
            return existing
    task = Task.objects.create(
        title=title[:200],
        description=description,
        conversation=conversation,
        contact_id=contact_id or (conversation.contact_id if conversation else None),
        assignee=assignee,
        status=status,
        priority=priority,
        due_at=due_at,
        requested_by=requested_by,
        completed_at=timezone.now()
        if status in (Task.Status.DONE, Task.Status.CANCELLED)
        else None,
    )
    if task.assignee_id:
        _task_notify_assignee(task)
    else:
        notification_create(
            kind=Notification.Kind.TASK,
            title=f"New task: {task.title}"[:200],
            body=task.description[:1000],
            conversation_id=task.conversation_id,
        )
    return task


@transaction.atomic
def task_update(*, task: Task, **fields: Any) -> Task:
    """Changes a task; a new assignee is notified, and finishing it stamps `completed_at`."""
    if unknown := set(fields) - TASK_FIELDS:
        raise TypeError(f"Unknown task fields: {sorted(unknown)}")
    reassigned = "assignee" in fields and getattr(fields["assignee"], "pk", None) != (
        task.assignee_id
    )
    for name, value in fields.items():
        setattr(task, name, value)
    if "status" in fields:
        finished = task.status in (Task.Status.DONE, Task.Status.CANCELLED)
        task.completed_at = (task.completed_at or timezone.now()) if finished else None
    task.save()
    if reassigned:
        _task_notify_assignee(task)
    return task


@transaction.atomic
def task_delete(*, task: Task) -> None:
    task.delete()


# --- Assessments ---------------------------------------------------------------------------


class InvalidFlow(ApplicationError):
    default_code = "validation_error"
    default_detail = "The assessment definition is invalid."


FLOW_FIELDS = {"key", "name", "description", "trigger_keywords", "definition", "enabled"}


def _validated(definition: Any) -> dict[str, Any]:
    try:
        return flows.definition_validate(definition)
    except flows.DefinitionError as error:
        raise InvalidFlow(
            details={f"definition.{path}": [message] for path, message in error.errors.items()}
        ) from error


@transaction.atomic
def assessment_flow_create(**fields: Any) -> AssessmentFlow:
    if unknown := set(fields) - FLOW_FIELDS:
        raise TypeError(f"Unknown flow fields: {sorted(unknown)}")
    fields["definition"] = _validated(fields.get("definition"))
    return AssessmentFlow.objects.create(**fields)


@transaction.atomic
def assessment_flow_update(*, flow: AssessmentFlow, **fields: Any) -> AssessmentFlow:
    """Changes a flow. Runs in progress keep the definition they started with."""
    if unknown := set(fields) - FLOW_FIELDS:
        raise TypeError(f"Unknown flow fields: {sorted(unknown)}")
    if "definition" in fields:
        fields["definition"] = _validated(fields["definition"])
    for name, value in fields.items():
        setattr(flow, name, value)
    flow.save()
    return flow


class FlowInUse(ApplicationError):
    status_code = 409
    default_code = "flow_in_use"
    default_detail = "The flow has runs; disable it instead of deleting it."


@transaction.atomic
def assessment_flow_delete(*, flow: AssessmentFlow) -> None:
    """Deletes a flow nobody has run; one with results is kept (disable it instead)."""
    if AssessmentRun.objects.filter(flow=flow).exists():
        raise FlowInUse()
    flow.delete()


@dataclass(frozen=True)
class AssessmentStep:
    """What to tell the contact after a message of the flow, and whether a person takes over."""

    replies: list[dict[str, Any]] = field(default_factory=list)
    handoff: str | None = None


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _ask(run: AssessmentRun) -> dict[str, Any]:
    questions = run.definition["questions"]
    return flows.question_prompt(questions[run.step], position=run.step + 1, total=len(questions))


@transaction.atomic
def assessment_start(
    *, flow: AssessmentFlow, conversation: Conversation, message: Message
) -> AssessmentStep:
    """Starts the flow in the conversation (ending an idle run left behind) and asks the
    first question."""
    AssessmentRun.objects.filter(
        conversation=conversation,
        status=AssessmentRun.Status.IN_PROGRESS,
        updated_at__lt=timezone.now() - ASSESSMENT_IDLE,
    ).update(status=AssessmentRun.Status.ABANDONED, updated_at=timezone.now())
    run = AssessmentRun.objects.create(
        flow=flow,
        definition=flow.definition,
        conversation=conversation,
        contact_id=conversation.contact_id,
        last_message=message,
    )
    replies = [_text(flow.definition["intro"])] if flow.definition.get("intro") else []
    return AssessmentStep(replies=[*replies, _ask(run)])


def _finish(run: AssessmentRun) -> AssessmentStep:
    definition = run.definition
    score = sum(float(item.get("score", 0)) for item in run.answers.values())
    outcome = flows.outcome_for(definition, score)
    run.status = AssessmentRun.Status.COMPLETED
    run.score = score
    run.outcome = outcome["id"] if outcome else ""
    run.completed_at = timezone.now()
    answers = {key: item["value"] for key, item in run.answers.items()}
    replies = [
        _text(flows.completion_text(definition, answers=answers, score=score, outcome=run.outcome))
    ]
    if outcome and outcome.get("text"):
        replies.append(_text(outcome["text"]))
    handoff = f"assessment_{run.outcome}" if outcome and outcome.get("handoff") else None
    return AssessmentStep(replies=replies, handoff=handoff)


@transaction.atomic
def assessment_answer(*, run: AssessmentRun, message: Message, text: str) -> AssessmentStep:
    """Takes `text` as the answer to the run's current question: an invalid answer is
    explained and the question asked again (too many in a row hand the contact to a person);
    a valid one is stored and the next question asked, or the run completed with its score
    and outcome. `stop` cancels, `skip` passes an optional question. The run row is locked,
    and a message already taken is not taken twice."""
    run = AssessmentRun.objects.select_for_update().get(pk=run.pk)
    if run.status != AssessmentRun.Status.IN_PROGRESS or run.last_message_id == message.pk:
        return AssessmentStep()
    run.last_message = message
    word = text.strip().lower().rstrip(".!")
    question = run.definition["questions"][run.step]
    step: AssessmentStep
    if word in flows.STOP_WORDS:
        run.status = AssessmentRun.Status.CANCELLED
        run.completed_at = timezone.now()
        step = AssessmentStep(replies=[_text("Okay, I've stopped the questions.")])
    elif word in flows.SKIP_WORDS and not question.get("required", True):
        step = _advance(run, question, None)
    else:
        try:
            answer = flows.answer_parse(question, text)
        except flows.InvalidAnswer as invalid:
            step = _invalid(run, str(invalid))
        else:
            step = _advance(run, question, answer)
    run.save()
    return step


def _advance(
    run: AssessmentRun, question: dict[str, Any], answer: flows.Answer | None
) -> AssessmentStep:
    run.answers = {
        **run.answers,
        question["id"]: {
            "value": answer.value if answer else None,
            "score": answer.score if answer else 0,
        },
    }
    run.invalid_answers = 0
    run.step += 1
    if run.step >= len(run.definition["questions"]):
        return _finish(run)
    return AssessmentStep(replies=[_ask(run)])


def _invalid(run: AssessmentRun, reason: str) -> AssessmentStep:
    run.invalid_answers += 1
    limit = run.definition.get("max_invalid_answers", flows.DEFAULT_MAX_INVALID)
    if run.invalid_answers >= limit:
        run.status = AssessmentRun.Status.ABANDONED
        run.completed_at = timezone.now()
        return AssessmentStep(
            replies=[_text("Let me bring in a person from our team to help with this.")],
            handoff="assessment_invalid_answers",
        )
    return AssessmentStep(replies=[_text(reason), _ask(run)])
