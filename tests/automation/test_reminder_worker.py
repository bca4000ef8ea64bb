"""Reminders delivered later by a real Celery worker: the per-tenant job dispatched through the
broker finds the due reminder and sends it on the conversation's own channel, in its tenant."""

from __future__ import annotations

import datetime

from django.utils import timezone
from django_tenants.utils import schema_context

from automation.models import Reminder
from automation.services import reminder_create
from channels_app.models import Channel, ChannelKind
from conversations.models import Contact, Conversation, Message
from jobs.models import JobRun
from jobs.tasks import job_dispatch_task
from tests import support
from tests.factories import AgentFactory


def test_a_due_reminder_is_delivered_by_the_worker_in_its_tenant(committed_db, worker) -> None:
    slug, other = committed_db["a"].slug, committed_db["b"].slug
    with schema_context(slug):
        agent = AgentFactory.create()
        channel = Channel.objects.create(
            kind=ChannelKind.WEBCHAT, name="Reminders", agent=agent, config={}
        )
        contact = Contact.objects.create(name="Rita")
        conversation = Conversation.objects.create(channel=channel, contact=contact)
        reminder = reminder_create(
            conversation=conversation,
            text="take the cake out",
            due_at=timezone.now() + datetime.timedelta(minutes=10),
        )
        # Ten minutes on: the clock moved by moving the reminder.
        Reminder.objects.filter(pk=reminder.pk).update(
            due_at=timezone.now() - datetime.timedelta(seconds=1)
        )
    try:
        job_dispatch_task.delay("automation.reminders_deliver")

        def delivered() -> bool:
            with schema_context(slug):
                return Reminder.objects.filter(pk=reminder.pk, status="delivered").exists()

        support.wait_until(delivered, timeout=30, what=f"the reminder\n{worker.log()}")
        with schema_context(slug):
            reminder.refresh_from_db()
            message = reminder.delivered_message
            assert message is not None
            assert message.content["text"] == "⏰ Reminder: take the cake out"
            assert (message.channel_id, message.sender_type) == (channel.pk, "ai")
            # Web chat delivers itself: the worker marked it sent.
            support.wait_until(
                lambda: Message.objects.get(pk=message.pk).status == "sent",
                timeout=30,
                what="the delivery",
            )
            # The run is recorded as it ends, after the reminder it delivered is committed.
            support.wait_until(
                lambda: JobRun.objects.filter(
                    job="automation.reminders_deliver", status="succeeded"
                ).exists(),
                timeout=30,
                what="the job run",
            )
        with schema_context(other):
            assert not Message.objects.filter(content__text__contains="take the cake").exists()
    finally:
        with schema_context(slug):
            Reminder.objects.filter(conversation=conversation).delete()
            Conversation.objects.filter(pk=conversation.pk).update(last_message=None)
            Message.objects.filter(conversation=conversation).delete()
            conversation.delete()
            contact.delete()
            channel.delete()
            agent.delete()
            JobRun.objects.filter(job="automation.reminders_deliver").delete()
        with schema_context(other):
            JobRun.objects.filter(job="automation.reminders_deliver").delete()
