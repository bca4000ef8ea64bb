"""Reminder services: scheduling at the due time, a broker outage, limits, delivery once."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError

from automation import tasks
from automation.models import Reminder
from automation.services import (
    MAX_SCHEDULED_REMINDERS,
    ReminderRefused,
    reminder_create,
    reminder_deliver,
)
from conversations.models import Message
from tests.factories import ConversationFactory


def _in(minutes: float) -> datetime.datetime:
    return timezone.now() + datetime.timedelta(minutes=minutes)


def test_a_reminder_due_soon_gets_a_task_at_its_time(
    tenant_a, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    scheduled: list[dict[str, Any]] = []
    monkeypatch.setattr(
        tasks.reminder_deliver_task, "apply_async", lambda **kwargs: scheduled.append(kwargs)
    )
    with tenant_a.schema(), django_capture_on_commit_callbacks(execute=True):
        conversation = ConversationFactory.create()
        soon = reminder_create(conversation=conversation, text="tea", due_at=_in(5))
        reminder_create(conversation=conversation, text="later", due_at=_in(24 * 60))
    # The one due tomorrow is left to the minute job.
    assert scheduled == [{"args": [str(soon.pk)], "eta": soon.due_at}]


def test_a_broker_outage_loses_no_reminder(
    tenant_a, monkeypatch, caplog, django_capture_on_commit_callbacks
) -> None:
    def down(**kwargs: Any) -> None:
        raise OperationalError("broker down")

    monkeypatch.setattr(tasks.reminder_deliver_task, "apply_async", down)
    with (
        caplog.at_level(logging.WARNING),
        tenant_a.schema(),
        django_capture_on_commit_callbacks(execute=True),
    ):
        conversation = ConversationFactory.create()
        reminder = reminder_create(conversation=conversation, text="tea", due_at=_in(2))
    assert "the reminder job delivers it" in caplog.text
    assert "tea" not in caplog.text
    with tenant_a.schema():
        assert Reminder.objects.get(pk=reminder.pk).status == "scheduled"


@pytest.mark.parametrize(
    ("due", "message"),
    [
        (-1, "That time has already passed; tell me a time in the future."),
        (0.1, "That time has already passed; tell me a time in the future."),
        (60 * 24 * 400, "I can only set reminders up to a year ahead."),
    ],
)
def test_times_out_of_range_are_refused(tenant_a, due: float, message: str) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        with pytest.raises(ReminderRefused, match=message):
            reminder_create(conversation=conversation, text="x", due_at=_in(due))
        assert not Reminder.objects.exists()


def test_a_conversation_holds_a_bounded_number_of_reminders(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        for n in range(MAX_SCHEDULED_REMINDERS):
            reminder_create(conversation=conversation, text=f"r{n}", due_at=_in(60 + n))
        with pytest.raises(ReminderRefused, match="cancel one first"):
            reminder_create(conversation=conversation, text="one more", due_at=_in(90))


def test_a_reminder_is_delivered_once_and_only_when_due(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        reminder = reminder_create(conversation=conversation, text="tea", due_at=_in(5))
        assert reminder_deliver(reminder_id=reminder.pk) is False
        Reminder.objects.filter(pk=reminder.pk).update(due_at=_in(-0.1))
        assert reminder_deliver(reminder_id=reminder.pk) is True
        assert reminder_deliver(reminder_id=reminder.pk) is False
        Reminder.objects.filter(pk=reminder.pk).update(status="cancelled")
        assert reminder_deliver(reminder_id=reminder.pk) is False
        assert Message.objects.filter(conversation=conversation, direction="out").count() == 1
