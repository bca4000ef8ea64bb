"""Handoff: business hours (time zone, weekly hours, holidays), the out-of-hours notice naming the
next opening, fair assignment among online operators under capacity (round robin, least busy),
notifications, and handing back to the AI."""

from __future__ import annotations

import collections
import datetime
import zoneinfo
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from agents.models import Agent
from channels_app.models import Channel, ChannelKind
from conversations.models import Contact, Conversation, Message, Operator
from conversations.services.messages import message_receive
from hub.redis import get_redis
from inbox.models import Notification
from processing.handlers.answer import HANDOFF_TEXT
from processing.handoff import (
    HandBackRefused,
    Opening,
    business_hours_check,
    conversation_hand_back,
    conversation_handoff,
    out_of_hours_notice,
)
from processing.services import conversation_drain
from tenants.models import Tenant
from tests.factories import AgentFactory, OperatorFactory

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
WEEKDAYS_9_TO_5 = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
ALWAYS_OPEN = {
    day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}


@pytest.fixture(autouse=True)
def _clean_redis() -> Any:
    client = get_redis()
    client.delete("hub:handoff:round_robin:tenant_a")
    yield
    client.delete("hub:handoff:round_robin:tenant_a")
    for key in client.scan_iter("hub:context:tenant_*"):
        client.delete(key)


def _new_york(year: int, month: int, day: int, hour: int, minute: int) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, tzinfo=NEW_YORK)


def _tenant(**fields: Any) -> Tenant:
    return Tenant(
        schema_name="hours", timezone="America/New_York", business_hours=WEEKDAYS_9_TO_5, **fields
    )


def _set_tenant(slug: str, **fields: Any) -> None:
    Tenant.objects.filter(schema_name=slug).update(**fields)


def _conversation(*, agent: Agent | None = None, language: str = "") -> Conversation:
    channel = Channel.objects.create(
        kind=ChannelKind.WEBCHAT, name="Chat", agent=agent or AgentFactory.create(), config={}
    )
    contact = Contact.objects.create(name="Ada", language=language)
    return Conversation.objects.create(channel=channel, contact=contact)


def _online(**fields: Any) -> Operator:
    return OperatorFactory.create(availability=Operator.Availability.ONLINE, **fields)


# --- Business hours ---------------------------------------------------------------------------


def test_business_hours_in_the_tenant_s_time_zone() -> None:
    tenant = _tenant()
    # Monday 2026-11-23: 09:30 in New York is 14:30 UTC.
    monday_0930 = datetime.datetime(2026, 11, 23, 14, 30, tzinfo=datetime.UTC)
    assert business_hours_check(tenant=tenant, at=monday_0930) == Opening(open_now=True)
    early = business_hours_check(tenant=tenant, at=_new_york(2026, 11, 23, 8, 59))
    assert early == Opening(open_now=False, next_opening=_new_york(2026, 11, 23, 9, 0))
    assert not business_hours_check(tenant=tenant, at=_new_york(2026, 11, 23, 17, 0)).open_now
    assert business_hours_check(tenant=tenant, at=_new_york(2026, 11, 23, 16, 59)).open_now
    # Friday evening: closed for the weekend, open again on Monday.
    friday = business_hours_check(tenant=tenant, at=_new_york(2026, 11, 27, 18, 0))
    assert friday.next_opening == _new_york(2026, 11, 30, 9, 0)
    # The same instant in Lisbon's hours is a different answer.
    lisbon = _tenant()
    lisbon.timezone = "Europe/Lisbon"
    # 17:30 in Lisbon (UTC in winter): closed there, 12:30 and open in New York.
    evening = monday_0930 + datetime.timedelta(hours=3)
    assert not business_hours_check(tenant=lisbon, at=evening).open_now
    assert business_hours_check(tenant=tenant, at=evening).open_now
    assert business_hours_check(tenant=lisbon, at=monday_0930).open_now


def test_holidays_close_the_whole_day() -> None:
    tenant = _tenant(holidays=["2026-11-26", "2026-11-27"])  # Thanksgiving and the day after
    thursday_noon = business_hours_check(tenant=tenant, at=_new_york(2026, 11, 26, 12, 0))
    assert thursday_noon == Opening(open_now=False, next_opening=_new_york(2026, 11, 30, 9, 0))
    assert business_hours_check(tenant=tenant, at=_new_york(2026, 11, 25, 12, 0)).open_now


def test_split_days_midnight_and_always_open() -> None:
    tenant = _tenant()
    tenant.business_hours = {"sat": [["10:00", "12:00"], ["20:00", "24:00"]]}
    saturday = _new_york(2026, 11, 28, 0, 0)
    assert business_hours_check(tenant=tenant, at=saturday.replace(hour=23, minute=59)).open_now
    lunch = business_hours_check(tenant=tenant, at=saturday.replace(hour=13))
    assert lunch.next_opening == saturday.replace(hour=20)
    sunday = business_hours_check(tenant=tenant, at=_new_york(2026, 11, 29, 0, 0))
    assert sunday.next_opening == _new_york(2026, 12, 5, 10, 0)
    tenant.business_hours = {}
    assert business_hours_check(tenant=tenant, at=saturday).open_now
    tenant.business_hours = {"mon": []}
    assert business_hours_check(tenant=tenant, at=saturday) == Opening(open_now=False)


def test_the_out_of_hours_notice_names_the_next_opening() -> None:
    tenant = _tenant()
    opening = Opening(open_now=False, next_opening=_new_york(2026, 11, 30, 9, 0))
    assert out_of_hours_notice(tenant=tenant, opening=opening, language="en") == (
        "Our team is away right now. A person will answer here from "
        "Monday 2026-11-30 09:00 (America/New_York)."
    )
    assert "segunda-feira 2026-11-30 09:00" in out_of_hours_notice(
        tenant=tenant, opening=opening, language="pt"
    )
    tenant.out_of_hours_message = "Back {next_opening}. {Braces} stay."
    assert out_of_hours_notice(tenant=tenant, opening=opening, language="en") == (
        "Back Monday 2026-11-30 09:00 (America/New_York). {Braces} stay."
    )
    tenant.out_of_hours_message = ""
    unknown = out_of_hours_notice(tenant=tenant, opening=Opening(open_now=False), language="de")
    assert (
        unknown
        == "Unser Team ist gerade nicht erreichbar. Eine Person antwortet hier so bald wie möglich."
    )


@pytest.mark.parametrize(
    "value",
    [
        {"monday": [["09:00", "17:00"]]},
        {"mon": [["9:00", "17:00"]]},
        {"mon": [["17:00", "09:00"]]},
        {"mon": [["09:00", "13:00"], ["12:00", "17:00"]]},
        {"mon": "09:00-17:00"},
        [["09:00", "17:00"]],
    ],
)
def test_bad_business_hours_are_refused(value) -> None:
    from django.core.exceptions import ValidationError

    from tenants.models import validate_business_hours

    with pytest.raises(ValidationError):
        validate_business_hours(value)


def test_the_platform_admin_shows_hours_holidays_and_the_time_zone(tenant_a, client) -> None:
    get_user_model().objects.create_superuser(username="root_hours", password="pw-root-123456")
    client.login(username="root_hours", password="pw-root-123456")
    page = client.get(f"/admin/tenants/tenant/{tenant_a.tenant.pk}/change/")
    assert page.status_code == 200
    for field in (b'name="timezone"', b'name="business_hours"', b'name="holidays"'):
        assert field in page.content
    assert b'name="out_of_hours_message"' in page.content


# --- Assignment ---------------------------------------------------------------------------------


def test_round_robin_is_fair_and_skips_offline_away_and_full_operators(tenant_a) -> None:
    with tenant_a.schema():
        agent = AgentFactory.create(assignment_strategy="round_robin")
        online = [_online(capacity=100) for _ in range(3)]
        OperatorFactory.create(availability=Operator.Availability.OFFLINE)
        OperatorFactory.create(availability=Operator.Availability.AWAY)
        full = _online(capacity=1)
        busy = _conversation(agent=agent)
        Conversation.objects.filter(pk=busy.pk).update(assignee=full, ai_active=False)

        assigned: collections.Counter[object] = collections.Counter()
        for _ in range(31):
            outcome = conversation_handoff(conversation=_conversation(agent=agent), reason="test")
            assert outcome.assignee is not None
            assert outcome.notice == ""
            assigned[outcome.assignee.pk] += 1
        assert set(assigned) == {operator.pk for operator in online}
        assert max(assigned.values()) - min(assigned.values()) <= 1

        # A resolved conversation frees its operator's slot.
        Conversation.objects.filter(pk=busy.pk).update(status="resolved")
        picks = {
            conversation_handoff(conversation=_conversation(agent=agent), reason="x").assignee
            for _ in range(4)
        }
        assert full in picks


def test_least_busy_picks_the_least_loaded(tenant_a) -> None:
    with tenant_a.schema():
        agent = AgentFactory.create(assignment_strategy="least_busy")
        a, b, c = _online(capacity=10), _online(capacity=10), _online(capacity=10)
        for operator, load in ((a, 3), (b, 1), (c, 2)):
            for _ in range(load):
                handled = _conversation(agent=agent)
                Conversation.objects.filter(pk=handled.pk).update(
                    assignee=operator, ai_active=False
                )
        picks = [
            conversation_handoff(conversation=_conversation(agent=agent), reason="x").assignee
            for _ in range(3)
        ]
        # b (1) → b (2)… then c and b tie at 2 with a at 3: never a.
        assert picks[0] == b
        assert a not in picks
        assert sorted(
            Conversation.objects.filter(assignee__in=[a, b, c], ai_active=False)
            .values_list("assignee", flat=True)
            .distinct()
        ) == sorted([a.pk, b.pk, c.pk])


def test_nobody_available_leaves_it_unassigned_for_everyone(tenant_a) -> None:
    with tenant_a.schema():
        OperatorFactory.create(availability=Operator.Availability.OFFLINE)
        conversation = _conversation()
        outcome = conversation_handoff(conversation=conversation, reason="requested")
        assert outcome.assignee is None
        assert outcome.notice == ""
        conversation.refresh_from_db()
        assert (conversation.ai_active, conversation.status, conversation.assignee) == (
            False,
            "pending",
            None,
        )
        notification = Notification.objects.get(conversation=conversation)
        assert (notification.kind, notification.operator) == ("handoff", None)
        assert notification.title == "Ada needs a person"
        # Handing off again changes nothing and notifies nobody twice.
        conversation_handoff(conversation=conversation, reason="requested")
        assert Notification.objects.filter(conversation=conversation).count() == 1


def test_the_current_assignee_keeps_the_conversation(tenant_a) -> None:
    with tenant_a.schema():
        _online()  # as free as the assignee: least busy alone would pick this one, created first
        second = _online()
        conversation = _conversation(agent=AgentFactory.create(assignment_strategy="least_busy"))
        Conversation.objects.filter(pk=conversation.pk).update(assignee=second)
        conversation.refresh_from_db()
        assert conversation_handoff(conversation=conversation, reason="x").assignee == second
        assert Notification.objects.get(conversation=conversation).operator == second


# --- Through processing -----------------------------------------------------------------------


def _ask(conversation: Conversation, text: str) -> Message:
    message, _ = message_receive(
        conversation=conversation,
        contact=conversation.contact,
        content={"type": "text", "text": text},
    )
    return message


def _replies(conversation: Conversation) -> list[str]:
    return [
        m.content["text"]
        for m in Message.objects.filter(conversation=conversation, sender_type="ai").order_by("seq")
    ]


def test_within_business_hours_an_operator_is_assigned_and_notified(tenant_a) -> None:
    with tenant_a.schema():
        _set_tenant(tenant_a.slug, business_hours=ALWAYS_OPEN, timezone="Europe/Lisbon")
        operator = _online()
        conversation = _conversation()
        _ask(conversation, "I want to talk to a person")
        conversation_drain(conversation_id=conversation.pk)
        conversation.refresh_from_db()
        assert (conversation.assignee, conversation.status, conversation.ai_active) == (
            operator,
            "pending",
            False,
        )
        assert _replies(conversation) == [HANDOFF_TEXT]
        notification = Notification.objects.get(conversation=conversation)
        assert notification.operator == operator
        assert notification.body.startswith("Why: the contact asked for a person.")


def test_out_of_hours_nobody_is_assigned_and_the_contact_is_told_when(tenant_a) -> None:
    zone = zoneinfo.ZoneInfo("Asia/Tokyo")
    today = timezone.now().astimezone(zone).date()
    tomorrow = today + datetime.timedelta(days=1)
    weekday = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[tomorrow.weekday()]
    with tenant_a.schema():
        # Open only tomorrow: closed now, whatever time the test runs.
        _set_tenant(
            tenant_a.slug, timezone="Asia/Tokyo", business_hours={weekday: [["09:00", "10:00"]]}
        )
        _online()
        conversation = _conversation(language="es-MX")
        _ask(conversation, "quiero hablar con un agent")
        conversation_drain(conversation_id=conversation.pk)
        conversation.refresh_from_db()
        assert (conversation.assignee, conversation.status) == (None, "pending")
        (reply,) = _replies(conversation)
        names = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
        assert reply == (
            "Nuestro equipo no está disponible ahora. Una persona responderá aquí a partir del "
            f"{names[tomorrow.weekday()]} {tomorrow.isoformat()} 09:00 (Asia/Tokyo)."
        )
        assert Notification.objects.get(conversation=conversation).operator is None


def test_a_holiday_today_means_out_of_hours(tenant_a) -> None:
    zone = zoneinfo.ZoneInfo("Pacific/Auckland")
    today = timezone.now().astimezone(zone).date()
    with tenant_a.schema():
        _set_tenant(
            tenant_a.slug,
            timezone="Pacific/Auckland",
            business_hours=ALWAYS_OPEN,
            holidays=[today.isoformat()],
        )
        _online()
        agent = AgentFactory.create(language="")
        conversation = _conversation(agent=agent)
        _ask(conversation, "human please")
        conversation_drain(conversation_id=conversation.pk)
        conversation.refresh_from_db()
        assert conversation.assignee is None
        (reply,) = _replies(conversation)
        tomorrow = today + datetime.timedelta(days=1)
        assert reply.endswith(f"{tomorrow.isoformat()} 00:00 (Pacific/Auckland).")
        assert reply.startswith("Our team is away right now.")


# --- Hand back --------------------------------------------------------------------------------


def test_an_operator_hands_back_to_the_ai(tenant_a) -> None:
    with tenant_a.schema():
        operator = _online()
        conversation = _conversation()
        Conversation.objects.filter(pk=conversation.pk).update(llm_conversation_id="conv_old")
        conversation.refresh_from_db()
        conversation_handoff(conversation=conversation, reason="requested")
        assert conversation.assignee == operator
        assert conversation.ai_active is False

        conversation_hand_back(conversation=conversation, operator=operator)
        conversation.refresh_from_db()
        assert (conversation.ai_active, conversation.status, conversation.assignee) == (
            True,
            "open",
            operator,
        )
        # The next AI turn starts a new OpenAI conversation (the operator's words are not in it).
        assert conversation.llm_conversation_id == ""
        note = Message.objects.get(conversation=conversation, sender_type="system")
        assert note.is_private
        assert note.sender_operator == operator
        assert note.client_id.startswith("handback:")
        # Handing back what the AI already has changes nothing.
        conversation_hand_back(conversation=conversation, operator=operator)
        assert Message.objects.filter(conversation=conversation, sender_type="system").count() == 1

        # The AI answers again.
        _ask(conversation, "When do you open?")
        conversation_drain(conversation_id=conversation.pk)
        assert len(_replies(conversation)) == 1


def test_no_agent_no_hand_back(tenant_a) -> None:
    with tenant_a.schema():
        operator = _online()
        conversation = _conversation()
        conversation_handoff(conversation=conversation, reason="requested")
        Channel.objects.filter(pk=conversation.channel_id).update(agent=None)
        with pytest.raises(HandBackRefused) as refused:
            conversation_hand_back(conversation=conversation, operator=operator)
        assert (refused.value.status_code, refused.value.error_code) == (409, "no_agent")
        conversation.refresh_from_db()
        assert conversation.ai_active is False
