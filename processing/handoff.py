"""Handing a conversation to a person, and back to the AI.

A handoff turns the AI off, puts the conversation in `pending` and, within the tenant's business
hours, assigns an operator who is online and under capacity (round robin or least busy, per the
agent). Outside business hours nobody is assigned and the contact is told when a person will
answer. Either way operators get an inbox notification: the assignee, or all of them.
"""

from __future__ import annotations

import datetime
import logging
import uuid
import zoneinfo
from dataclasses import dataclass

import redis
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from agents.models import Agent
from conversations.models import Conversation, Message, Operator
from conversations.services.conversations import conversation_update
from conversations.services.messages import message_send
from hub.db import advisory_key
from hub.exceptions import ConflictError
from hub.redis import get_redis
from inbox.models import Notification
from inbox.services import notification_create
from processing.context import HAND_BACK_CLIENT_ID, context_summary
from tenants.connection import tenant_connection
from tenants.models import WEEKDAYS, Tenant
from tenants.selectors import tenant_current

logger = logging.getLogger(__name__)

Strategy = Agent.AssignmentStrategy
# Conversations a person is handling: they count towards an operator's capacity.
HANDLED_STATUSES = (Conversation.Status.OPEN, Conversation.Status.PENDING)
# How far ahead the next opening is looked for (holidays may close many days in a row).
LOOKAHEAD_DAYS = 400

REASONS = {
    "requested": "routed to a person",
    "rule": "a routing rule sends it to a person",
    "explicit_request": "the contact asked for a person",
    "handoff_keyword": "the contact used a handoff keyword",
    "repeated_low_confidence": "the AI was unsure twice in a row",
    "negative_sentiment": "the contact seems unhappy",
    "no_answer": "the AI had no answer",
    "no_credits": "no credits left for AI replies",
}


class HandBackRefused(ConflictError):
    default_code = "no_agent"
    default_detail = "This conversation's channel has no AI agent to hand it back to."


# --- Business hours ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Opening:
    """Whether the business is open at a moment, and if not, when it next opens (None: not
    within the look-ahead, e.g. no hours on any day)."""

    open_now: bool
    next_opening: datetime.datetime | None = None


def _tenant_zone(tenant: Tenant) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(tenant.timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        logger.warning("unknown tenant time zone; using UTC", extra={"schema": tenant.schema_name})
        return zoneinfo.ZoneInfo("UTC")


def _local(day: datetime.date, hour: str, zone: zoneinfo.ZoneInfo) -> datetime.datetime:
    if hour == "24:00":
        day, hour = day + datetime.timedelta(days=1), "00:00"
    return datetime.datetime.combine(day, datetime.time.fromisoformat(hour), tzinfo=zone)


def business_hours_check(*, tenant: Tenant, at: datetime.datetime) -> Opening:
    """Open at `at` in the tenant's time zone: within an interval of that weekday's hours and not
    on a holiday. No hours configured at all means always open."""
    hours = tenant.business_hours or {}
    if not hours:
        return Opening(open_now=True)
    zone = _tenant_zone(tenant)
    holidays = set(tenant.holidays or [])
    moment = at.astimezone(datetime.UTC)
    today = at.astimezone(zone).date()
    # From the day before: an interval ending at 24:00 yesterday is over, but comparing in UTC
    # keeps every edge (and DST changes) exact.
    for offset in range(-1, LOOKAHEAD_DAYS):
        day = today + datetime.timedelta(days=offset)
        if day.isoformat() in holidays:
            continue
        for start, end in hours.get(WEEKDAYS[day.weekday()], []):
            starts = _local(day, start, zone).astimezone(datetime.UTC)
            ends = _local(day, end, zone).astimezone(datetime.UTC)
            if starts <= moment < ends:
                return Opening(open_now=True)
            if starts > moment:
                return Opening(open_now=False, next_opening=starts.astimezone(zone))
    return Opening(open_now=False)


# The built-in out-of-hours notices; a tenant may write its own (Tenant.out_of_hours_message).
NOTICES = {
    "en": "Our team is away right now. A person will answer here from {next_opening}.",
    "es": "Nuestro equipo no está disponible ahora. Una persona responderá aquí a partir del "
    "{next_opening}.",
    "pt": "A nossa equipa não está disponível agora. Uma pessoa responderá aqui a partir de "
    "{next_opening}.",
    "fr": "Notre équipe est absente pour le moment. Une personne vous répondra ici à partir de "
    "{next_opening}.",
    "de": "Unser Team ist gerade nicht erreichbar. Eine Person antwortet hier ab {next_opening}.",
    "it": "Il nostro team non è disponibile in questo momento. Una persona risponderà qui a "
    "partire da {next_opening}.",
    "nl": "Ons team is nu niet bereikbaar. Een medewerker antwoordt hier vanaf {next_opening}.",
}
NOTICES_UNKNOWN_TIME = {
    "en": "Our team is away right now. A person will answer here as soon as possible.",
    "es": "Nuestro equipo no está disponible ahora. Una persona responderá aquí lo antes posible.",
    "pt": "A nossa equipa não está disponível agora. Uma pessoa responderá aqui assim que "
    "possível.",
    "fr": "Notre équipe est absente pour le moment. Une personne vous répondra ici dès que "
    "possible.",
    "de": "Unser Team ist gerade nicht erreichbar. Eine Person antwortet hier so bald wie möglich.",
    "it": "Il nostro team non è disponibile in questo momento. Una persona risponderà qui il prima "
    "possibile.",
    "nl": "Ons team is nu niet bereikbaar. Een medewerker antwoordt hier zo snel mogelijk.",
}
WEEKDAY_NAMES = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
    "pt": (
        "segunda-feira",
        "terça-feira",
        "quarta-feira",
        "quinta-feira",
        "sexta-feira",
        "sábado",
        "domingo",
    ),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "it": ("lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica"),
    "nl": ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"),
}


def notice_language(*, contact_language: str, agent: Agent | None) -> str:
    """The contact's language when we have a notice in it, else the agent's, else English."""
    for code in (contact_language, agent.language if agent else ""):
        primary = code.strip().lower().split("-")[0].split("_")[0]
        if primary in NOTICES:
            return primary
    return "en"


def opening_format(*, when: datetime.datetime, language: str) -> str:
    """e.g. `Monday 2026-11-23 09:00 (Europe/Lisbon)`: the weekday in the language, the rest
    unambiguous in any."""
    weekday = WEEKDAY_NAMES.get(language, WEEKDAY_NAMES["en"])[when.weekday()]
    return f"{weekday} {when.date().isoformat()} {when:%H:%M} ({when.tzinfo})"


def out_of_hours_notice(*, tenant: Tenant, opening: Opening, language: str) -> str:
    """What the contact is told when handed to a person outside business hours."""
    if opening.next_opening is None:
        if tenant.out_of_hours_message and "{next_opening}" not in tenant.out_of_hours_message:
            return tenant.out_of_hours_message
        return NOTICES_UNKNOWN_TIME[language]
    when = opening_format(when=opening.next_opening, language=language)
    template = tenant.out_of_hours_message or NOTICES[language]
    # Not str.format: a tenant's own text may hold other braces.
    return template.replace("{next_opening}", when)


# --- Assignment -------------------------------------------------------------------------------


def _lock_assignment() -> None:
    """Serialises assignments in this tenant until the transaction ends, so two handoffs at once
    neither overfill an operator nor take the same round-robin turn."""
    key = advisory_key(f"{tenant_connection().schema_name}:handoff-assignment")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def operator_loads() -> dict[object, int]:
    """Per operator, the conversations a person is handling that are assigned to them."""
    rows = (
        Conversation.objects.filter(
            assignee__isnull=False, ai_active=False, status__in=HANDLED_STATUSES
        )
        .values("assignee")
        .annotate(count=Count("id"))
    )
    return {row["assignee"]: row["count"] for row in rows}


def _round_robin_key() -> str:
    return f"hub:handoff:round_robin:{tenant_connection().schema_name}"


def _round_robin_next(operators: list[Operator], eligible: list[Operator]) -> Operator:
    """The first eligible operator after the last one given a conversation, in a fixed order
    (wrapping around), so turns rotate whoever happens to be offline in between."""
    client = get_redis()
    last = _uuid_or_none(client.get(_round_robin_key()))
    order = [operator.pk for operator in operators]
    last_index = order.index(last) if last in order else -1
    chosen = next((op for op in eligible if order.index(op.pk) > last_index), eligible[0])
    client.set(_round_robin_key(), str(chosen.pk))
    return chosen


def _uuid_or_none(raw: bytes | str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw.decode() if isinstance(raw, bytes) else raw) if raw else None
    except ValueError:
        return None


def operator_pick(*, strategy: str, current: Operator | None = None) -> Operator | None:
    """An operator for a conversation being handed off: online and under capacity; the current
    assignee if they qualify (the contact keeps their person), else by `strategy`. None when
    nobody qualifies. Call inside a transaction: it holds the tenant's assignment lock."""
    _lock_assignment()
    operators = list(Operator.objects.order_by("created_at", "id"))
    loads = operator_loads()
    eligible = [
        operator
        for operator in operators
        if operator.availability == Operator.Availability.ONLINE
        and loads.get(operator.pk, 0) < operator.capacity
    ]
    if not eligible:
        return None
    if current is not None and any(operator.pk == current.pk for operator in eligible):
        return current
    if strategy == Strategy.ROUND_ROBIN:
        try:
            return _round_robin_next(operators, eligible)
        except redis.RedisError:
            logger.warning("round robin unavailable (Redis); assigning the least busy")
    return min(eligible, key=lambda operator: loads.get(operator.pk, 0))


# --- Handoff and hand back --------------------------------------------------------------------


@dataclass(frozen=True)
class HandoffOutcome:
    assignee: Operator | None
    opening: Opening
    # For the contact when no person will answer soon (out of hours); empty otherwise. The
    # caller sends it: it replaces a generic "a person will answer shortly".
    notice: str = ""


def _notification_text(conversation: Conversation, reason: str, summary: str) -> tuple[str, str]:
    title = f"{conversation.contact} needs a person"
    body = f"Why: {REASONS.get(reason, reason.replace('_', ' '))}."
    if summary:
        body += f"\n\nSo far: {summary}"
    return title[:200], body


@transaction.atomic
def conversation_handoff(
    *,
    conversation: Conversation,
    reason: str,
    at: datetime.datetime | None = None,
) -> HandoffOutcome:
    """A person takes over: the AI stops, the conversation waits (`pending`) and, within business
    hours, an operator is assigned; operators are notified (the assignee, else all of them).

    Outside business hours (or with nobody available) the conversation stays unassigned and
    `notice` says when a person will answer. A conversation already with a person is left as it
    is (no second notification). Updates `conversation` in place.
    """
    locked = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("channel__agent", "contact", "assignee")
        .get(pk=conversation.pk)
    )
    agent = locked.channel.agent
    tenant = tenant_current()
    opening = business_hours_check(tenant=tenant, at=at or timezone.now())
    language = notice_language(contact_language=locked.contact.language, agent=agent)
    notice = (
        ""
        if opening.open_now
        else out_of_hours_notice(tenant=tenant, opening=opening, language=language)
    )
    if not locked.ai_active:
        return HandoffOutcome(assignee=locked.assignee, opening=opening, notice=notice)
    assignee = None
    if opening.open_now:
        strategy = agent.assignment_strategy if agent else Strategy.ROUND_ROBIN
        assignee = operator_pick(strategy=strategy, current=locked.assignee)
    changes: dict[str, object] = {"ai_active": False, "status": Conversation.Status.PENDING}
    if assignee is not None:
        changes["assignee"] = assignee
    conversation_update(conversation=locked, **changes)
    conversation.ai_active, conversation.status = locked.ai_active, locked.status
    conversation.assignee = locked.assignee
    title, body = _notification_text(locked, reason, context_summary(conversation=locked))
    notification_create(
        kind=Notification.Kind.HANDOFF,
        title=title,
        body=body,
        conversation_id=locked.pk,
        operator_id=assignee.pk if assignee else None,
    )
    logger.info(
        "handoff",
        extra={
            "conversation_id": str(locked.pk),
            "reason": reason,
            "assigned": assignee is not None,
            "open_now": opening.open_now,
        },
    )
    return HandoffOutcome(assignee=assignee, opening=opening, notice=notice)


@transaction.atomic
def conversation_hand_back(*, conversation: Conversation, operator: Operator) -> Conversation:
    """The AI answers again (`open`, AI on). The assignee stays, as the person a new handoff
    goes back to. A private note records who handed back; the AI's next turn starts a fresh
    OpenAI conversation given a recap of everything before, the operator's words included
    (processing/context.py). Raises HandBackRefused (409) when the channel has no agent."""
    locked = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("channel")
        .get(pk=conversation.pk)
    )
    if locked.channel.agent_id is None:
        raise HandBackRefused()
    if locked.ai_active:
        return locked
    message_send(
        conversation=locked,
        content={"type": "text", "text": f"{operator} handed the conversation back to the AI."},
        sender_type=Message.SenderType.SYSTEM,
        sender_operator=operator,
        client_id=f"{HAND_BACK_CLIENT_ID}{locked.last_seq}",
        is_private=True,
    )
    Conversation.objects.filter(pk=locked.pk).update(llm_conversation_id="")
    locked.llm_conversation_id = ""
    conversation_update(conversation=locked, ai_active=True, status=Conversation.Status.OPEN)
    conversation.ai_active, conversation.status = locked.ai_active, locked.status
    conversation.llm_conversation_id = ""
    logger.info(
        "hand back", extra={"conversation_id": str(locked.pk), "operator_id": str(operator.pk)}
    )
    return locked
