"""Jobs that run every minute ask each tenant first whether it has work for them, so a
thousand idle tenants cost a thousand cheap reads instead of ten thousand tasks, locks and run
records a minute. Each check says no in a tenant with nothing to do and yes once there is."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from automation.models import Reminder
from automation.services import reminder_create
from channels_app.models import ChannelKind, InboundEvent
from conversations.models import Conversation, Message, Operator
from conversations.services.messages import message_create, message_receive
from hub.redis import get_redis
from jobs.models import JobRun
from jobs.registry import JOB_PENDING
from jobs.schedules import DEFAULT_SCHEDULES
from jobs.tasks import job_dispatch_task
from knowledge.models import KnowledgeDocument
from tenants.connection import tenant_connection
from tests import support
from tests.factories import ChannelFactory, ConversationFactory, OperatorFactory
from webchat.presence import announced_visitors_key
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_event_dispatch, webhook_subscription_create

AGO = timedelta(minutes=20)
TEXT = {"type": "text", "text": "hello"}


def _snoozed_due() -> None:
    ConversationFactory.create(status="snoozed", snoozed_until=timezone.now() - AGO)


def _stranded_event() -> None:
    event = InboundEvent.objects.create(
        channel=ChannelFactory.create(), provider_event_id="e-1", body="{}", content_type="json"
    )
    InboundEvent.objects.filter(pk=event.pk).update(
        received_at=timezone.now() - AGO, queued_at=timezone.now() - AGO
    )


def _stuck_reply() -> None:
    message, _ = message_create(
        conversation=ConversationFactory.create(),
        direction="out",
        sender_type="operator",
        content=TEXT,
        status="pending",
    )
    Message.objects.filter(pk=message.pk).update(updated_at=timezone.now() - AGO)


def _unanswered_message() -> None:
    conversation = ConversationFactory.create()
    message, _ = message_receive(
        conversation=conversation, contact=conversation.contact, content=TEXT
    )
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - AGO)


def _quiet_conversation() -> None:
    conversation = ConversationFactory.create()
    message_receive(conversation=conversation, contact=conversation.contact, content=TEXT)
    Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=timezone.now() - AGO)


def _overdue_webhook() -> None:
    webhook_subscription_create(
        url="http://127.0.0.1:9/hook", events=["message.created"], secret="whsec_" + "s" * 24
    )
    webhook_event_dispatch(event="message.created", payload={"id": "m-1", "seq": 1})
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - AGO)


def _due_reminder() -> None:
    reminder = reminder_create(
        conversation=ConversationFactory.create(),
        text="call back",
        due_at=timezone.now() + timedelta(minutes=10),
    )
    Reminder.objects.filter(pk=reminder.pk).update(due_at=timezone.now() - AGO)


def _operator_online() -> None:
    OperatorFactory.create(availability=Operator.Availability.ONLINE)


def _visitor_announced() -> None:
    schema = tenant_connection().schema_name
    get_redis().sadd(announced_visitors_key(schema), "00000000-0000-0000-0000-000000000001")


def _unchunked_document() -> None:
    # Written around the services, as an import would: no chunks yet.
    KnowledgeDocument.objects.create(title="Hours", body="Open from nine to six.")


WORK: dict[str, list[Callable[[], object]]] = {
    "conversations.wake_snoozed": [_snoozed_due],
    "channels.sweep_inbound": [_stranded_event],
    "channels.sweep_deliveries": [_stuck_reply],
    "channels.poll_imap": [lambda: ChannelFactory.create(kind=ChannelKind.EMAIL, config={})],
    "channels.poll_signal": [lambda: ChannelFactory.create(kind=ChannelKind.SIGNAL, config={})],
    "processing.sweep": [_unanswered_message],
    "extraction.dispatch": [_quiet_conversation],
    "webhooks.deliver_due": [_overdue_webhook],
    "automation.reminders_deliver": [_due_reminder],
    "presence.sweep": [_operator_online, _visitor_announced],
    "knowledge.index": [_unchunked_document],
}


def test_every_job_run_more_than_hourly_checks_for_work_first() -> None:
    frequent = {job for job, minute, _hour in DEFAULT_SCHEDULES.values() if "*" in minute}
    assert frequent <= set(JOB_PENDING), frequent - set(JOB_PENDING)
    assert set(WORK) == set(JOB_PENDING)


@pytest.mark.parametrize(
    ("job", "make_work"),
    [(job, make) for job, makers in WORK.items() for make in makers],
    ids=lambda value: value if isinstance(value, str) else value.__name__,
)
def test_a_check_says_no_until_there_is_work(
    tenant_a, tenant_b, job: str, make_work: Callable[[], object]
) -> None:
    for tenant in (tenant_a, tenant_b):
        get_redis().delete(announced_visitors_key(tenant.slug))
    pending = JOB_PENDING[job]
    try:
        with tenant_a.schema():
            assert not pending()
            make_work()
            assert pending()
        with tenant_b.schema():
            # Another tenant's work is not this tenant's.
            assert not pending()
    finally:
        get_redis().delete(announced_visitors_key(tenant_a.slug))


def test_a_dispatch_runs_the_job_only_in_tenants_with_work(committed_db, worker) -> None:
    """Through beat's task and a real worker: tenant A has a snoozed conversation due, tenant
    B one due tomorrow. A's is woken and its run recorded; B gets no run and its conversation
    keeps sleeping."""
    a, b = committed_db["a"].slug, committed_db["b"].slug
    job = "conversations.wake_snoozed"
    with schema_context(a):
        due = ConversationFactory.create(status="snoozed", snoozed_until=timezone.now() - AGO)
    with schema_context(b):
        later = ConversationFactory.create(
            status="snoozed", snoozed_until=timezone.now() + timedelta(days=1)
        )
    try:
        tenant_connection().set_schema_to_public()
        job_dispatch_task.delay(job)

        def recorded() -> bool:
            with schema_context(a):
                return JobRun.objects.filter(job=job).exists()

        support.wait_until(recorded, timeout=30, what=f"the run in A\n{worker.log()}")

        def batch_done() -> bool:
            lines = worker.log().splitlines()
            return any("jobs.dispatch_batch[" in line and "succeeded" in line for line in lines)

        support.wait_until(batch_done, timeout=30, what="the batch to finish")
        with schema_context(a):
            assert JobRun.objects.filter(job=job).count() == 1
            assert Conversation.objects.get(pk=due.pk).status == "open"
        with schema_context(b):
            assert not JobRun.objects.filter(job=job).exists()
            assert Conversation.objects.get(pk=later.pk).status == "snoozed"
    finally:
        for slug, conversation in ((a, due), (b, later)):
            with schema_context(slug):
                JobRun.objects.filter(job=job).delete()
                conversation.participants.all().delete()
                conversation.delete()
                conversation.contact.delete()
                conversation.channel.delete()
        tenant_connection().set_schema_to_public()
