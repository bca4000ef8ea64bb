"""Reads on what the automation handlers keep."""

from __future__ import annotations

import datetime
import re
import uuid
import zoneinfo
from typing import Any

from django.db.models import Avg, Count, Q, QuerySet
from django.utils import timezone

from automation.models import AssessmentFlow, AssessmentRun, CsatRating, Reminder, Task
from conversations.models import Conversation
from hub.db import PreparedQuery, prepared_exists
from hub.exceptions import NotFoundError
from hub.memo import memo_changed, memo_forget, memo_get
from tenants.connection import tenant_connection
from tenants.selectors import tenant_current

# A run untouched this long is over: the contact's next message starts afresh.
ASSESSMENT_IDLE = datetime.timedelta(hours=24)


def _uuid(value: uuid.UUID | str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def conversation_timezone(*, conversation: Conversation) -> zoneinfo.ZoneInfo:
    """Where the contact's clock is: the contact's `timezone` attribute when it names a real
    zone, else the tenant's business time zone."""
    for name in (conversation.contact.attributes.get("timezone"), tenant_current().timezone):
        if isinstance(name, str) and name:
            try:
                return zoneinfo.ZoneInfo(name)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                continue
    return zoneinfo.ZoneInfo("UTC")


# --- Assessments ---------------------------------------------------------------------------


def assessment_flow_list() -> QuerySet[AssessmentFlow]:
    return AssessmentFlow.objects.all()


def assessment_flow_get(*, flow_id: uuid.UUID | str) -> AssessmentFlow:
    pk = _uuid(flow_id)
    flow = AssessmentFlow.objects.filter(pk=pk).first() if pk else None
    if flow is None:
        raise NotFoundError("No such assessment flow.")
    return flow


def assessment_run_list(*, flow: AssessmentFlow | None = None) -> QuerySet[AssessmentRun]:
    runs = AssessmentRun.objects.select_related("flow")
    return runs.filter(flow=flow) if flow is not None else runs


def _runs_active(conversation_id: uuid.UUID | str) -> QuerySet[AssessmentRun]:
    return AssessmentRun.objects.filter(
        conversation_id=conversation_id,
        status=AssessmentRun.Status.IN_PROGRESS,
        updated_at__gte=timezone.now() - ASSESSMENT_IDLE,
    )


def assessment_run_active(*, conversation_id: uuid.UUID | str) -> AssessmentRun | None:
    """The run in progress in the conversation, unless it has gone idle."""
    return _runs_active(conversation_id).select_related("flow").first()


# Asked by routing on every message.
_ACTIVE_RUN = PreparedQuery(
    lambda conversation_id, since: AssessmentRun.objects.filter(
        conversation_id=conversation_id,
        status=AssessmentRun.Status.IN_PROGRESS,
        updated_at__gte=since,
    ).values_list("pk", flat=True)[:1],
    conversation_id=uuid.UUID,
    since=datetime.datetime,
)


def _flows_key() -> tuple[str, str]:
    return ("automation", f"{tenant_connection().schema_name}:flows")


def _flows_defined() -> bool:
    """Whether the tenant has defined a questionnaire: remembered per process and schema
    (hub/memo.py), forgotten when a flow is written (automation/apps.py)."""
    return memo_get(_flows_key(), AssessmentFlow.objects.exists)


def assessment_flows_memo_forget(**_: Any) -> None:
    """Signal receiver: a flow of the current schema was written."""
    memo_forget(_flows_key())
    memo_changed()


def conversation_sticky_handler(*, conversation_id: uuid.UUID | str) -> str | None:
    """The handler that owns the conversation's next message whatever routing would say: a
    questionnaire in progress takes the contact's replies as its answers. For routing, on
    every message: one id at most, by a query compiled once (hub.db.PreparedQuery), and none
    in a tenant without flows, where no run can be (a flow with runs cannot be deleted)."""
    if not _flows_defined():
        return None
    if _ACTIVE_RUN.all(conversation_id=conversation_id, since=timezone.now() - ASSESSMENT_IDLE):
        return "assessment"
    return None


def _phrase_in(phrase: str, text: str) -> bool:
    return bool(re.search(rf"(?<!\w){re.escape(phrase.lower())}(?!\w)", text))


def assessment_flow_choose(
    *, text: str, intent: str, entities: dict[str, Any]
) -> AssessmentFlow | None:
    """Which enabled flow a message starts: one routing named (an `assessment` entity), one
    whose key is the intent, one whose trigger phrase the message holds, else the only one."""
    flows = list(AssessmentFlow.objects.filter(enabled=True).order_by("created_at"))
    named = entities.get("assessment") or entities.get("flow")
    lowered = " ".join(text.lower().split())
    for matches in (
        lambda flow: isinstance(named, str) and flow.key == named,
        lambda flow: bool(intent) and flow.key == intent,
        lambda flow: any(_phrase_in(str(p), lowered) for p in flow.trigger_keywords or []),
    ):
        for flow in flows:
            if matches(flow):
                return flow
    return flows[0] if len(flows) == 1 else None


# --- Reminders -----------------------------------------------------------------------------


def reminder_list(*, conversation_id: uuid.UUID | str) -> QuerySet[Reminder]:
    """The conversation's reminders still to come, soonest first."""
    return Reminder.objects.filter(
        conversation_id=conversation_id, status=Reminder.Status.SCHEDULED
    ).order_by("due_at")


def reminders_due(*, now: datetime.datetime | None = None) -> QuerySet[Reminder]:
    return Reminder.objects.filter(
        status=Reminder.Status.SCHEDULED, due_at__lte=now or timezone.now()
    )


_ANY_REMINDER_DUE = prepared_exists(lambda now: reminders_due(now=now), now=datetime.datetime)


def reminders_due_exist() -> bool:
    """The reminder job's check, in every tenant every minute (hub.db.prepared_exists)."""
    return _ANY_REMINDER_DUE(now=timezone.now())


def reminder_ids_due(*, limit: int = 500) -> list[uuid.UUID]:
    return list(reminders_due().order_by("due_at").values_list("pk", flat=True)[:limit])


# --- Tasks ---------------------------------------------------------------------------------


def task_list(
    *,
    status: str | None = None,
    assignee: uuid.UUID | None = None,
    conversation: uuid.UUID | None = None,
    contact: uuid.UUID | None = None,
) -> QuerySet[Task]:
    tasks = Task.objects.select_related("assignee")
    if status:
        tasks = tasks.filter(status=status)
    if assignee:
        tasks = tasks.filter(assignee_id=assignee)
    if conversation:
        tasks = tasks.filter(conversation_id=conversation)
    if contact:
        tasks = tasks.filter(contact_id=contact)
    return tasks


def task_get(*, task_id: uuid.UUID | str) -> Task:
    pk = _uuid(task_id)
    task = Task.objects.select_related("assignee").filter(pk=pk).first() if pk else None
    if task is None:
        raise NotFoundError("No such task.")
    return task


def task_list_for_contact(*, contact_id: uuid.UUID | str, limit: int = 5) -> list[Task]:
    """The contact's most recent requests, unfinished first."""
    tasks = Task.objects.filter(contact_id=contact_id).order_by("-created_at")[:limit]
    return sorted(tasks, key=lambda task: task.status in (Task.Status.DONE, Task.Status.CANCELLED))


# --- Ratings -------------------------------------------------------------------------------


def csat_list(
    *,
    conversation: uuid.UUID | None = None,
    sentiment: str | None = None,
    since: datetime.datetime | None = None,
) -> QuerySet[CsatRating]:
    ratings = CsatRating.objects.all()
    if conversation:
        ratings = ratings.filter(conversation_id=conversation)
    if sentiment:
        ratings = ratings.filter(sentiment=sentiment)
    if since:
        ratings = ratings.filter(created_at__gte=since)
    return ratings


def csat_get(*, rating_id: uuid.UUID | str) -> CsatRating:
    pk = _uuid(rating_id)
    rating = CsatRating.objects.filter(pk=pk).first() if pk else None
    if rating is None:
        raise NotFoundError("No such rating.")
    return rating


def csat_summary(*, since: datetime.datetime | None = None) -> dict[str, Any]:
    """How many ratings, their mean, and how many per sentiment. One query."""
    ratings = csat_list(since=since)
    totals = ratings.aggregate(
        count=Count("pk"),
        average=Avg("score"),
        positive=Count("pk", filter=Q(sentiment=CsatRating.Sentiment.POSITIVE)),
        neutral=Count("pk", filter=Q(sentiment=CsatRating.Sentiment.NEUTRAL)),
        negative=Count("pk", filter=Q(sentiment=CsatRating.Sentiment.NEGATIVE)),
    )
    if totals["average"] is not None:
        totals["average"] = round(float(totals["average"]), 2)
    return totals
