"""The retention policy (time-controlled through `now`): soft deletes past the policy, hard
deletes with files after the audit window, legal holds, audit records, and tenant isolation."""

from __future__ import annotations

from pathlib import Path

from django.utils import timezone

from channels_app.models import InboundEvent
from conversations.models import Attachment, Conversation, Message
from jobs.models import JobRun
from jobs.services import job_run
from retention.models import RetentionRun
from retention.services import retention_apply
from tests.factories import ChannelFactory, ConversationFactory
from tests.retention.conftest import attach, days, say
from webhooks.models import WebhookDelivery, WebhookSubscription

ZERO_WORK = {
    "messages_soft_deleted": 0,
    "messages_hard_deleted": 0,
    "attachments_deleted": 0,
    "files_deleted": 0,
    "inbound_events_deleted": 0,
    "webhook_deliveries_deleted": 0,
}


def _set_tenant(info, **fields) -> None:
    tenant = info.tenant
    for key, value in fields.items():
        setattr(tenant, key, value)
    tenant.save()


def _work(run: RetentionRun) -> dict[str, int]:
    return {key: run.counts.get(key, 0) for key in ZERO_WORK}


def test_old_messages_are_soft_deleted_then_purged_with_their_files(tenant_a, media) -> None:
    now = timezone.now()
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        old = say(conversation, "my card is 4111", at=now - days(100))
        old_file = attach(conversation, message=old, at=now - days(100))
        recent = say(conversation, "still here", at=now - days(80))
        held = ConversationFactory.create(legal_hold=True)
        kept = say(held, "evidence", at=now - days(400))

        first = retention_apply(now=now)
        old.refresh_from_db()
        assert old.deleted_at == now
        # Soft: the row and its file stay for the audit window.
        assert old.content == {"type": "text", "text": "my card is 4111"}
        assert Path(old_file.file.path).exists()
        assert Message.objects.get(pk=recent.pk).deleted_at is None
        assert Message.objects.get(pk=kept.pk).deleted_at is None
        assert first.kind == "policy"
        assert (first.retention_days, first.cutoff) == (90, now - days(90))
        assert _work(first) == {**ZERO_WORK, "messages_soft_deleted": 1}
        assert (first.counts["conversations_on_hold"], first.counts["messages_held"]) == (1, 1)

        # Inside the audit window nothing more happens.
        assert _work(retention_apply(now=now + days(6))) == ZERO_WORK
        assert Message.objects.filter(pk=old.pk).exists()

        purge = retention_apply(
            now=now
            + days(
                7,
            )
            + days(0.01)
        )
        assert _work(purge) == {
            **ZERO_WORK,
            "messages_hard_deleted": 1,
            "attachments_deleted": 1,
            "files_deleted": 1,
        }
        assert not Message.objects.filter(pk=old.pk).exists()
        assert not Attachment.objects.filter(pk=old_file.pk).exists()
        assert not Path(old_file.file.path).exists()
        assert Message.objects.filter(pk=kept.pk, deleted_at__isnull=True).exists()
        assert Message.objects.filter(pk=recent.pk, deleted_at__isnull=True).exists()
        # The conversation's counters survive its messages.
        assert Conversation.objects.get(pk=conversation.pk).last_seq == 2

        # Idempotent: nothing is left to do at the same time.
        assert _work(retention_apply(now=now + days(7.01))) == ZERO_WORK
        assert RetentionRun.objects.count() == 4


def test_lifting_a_legal_hold_lets_retention_catch_up(tenant_a) -> None:
    now = timezone.now()
    with tenant_a.schema():
        held = ConversationFactory.create(legal_hold=True)
        message = say(held, "evidence", at=now - days(400))
        Message.objects.filter(pk=message.pk).update(deleted_at=now - days(30))
        assert _work(retention_apply(now=now)) == ZERO_WORK
        Conversation.objects.filter(pk=held.pk).update(legal_hold=False)
        assert _work(retention_apply(now=now))["messages_hard_deleted"] == 1


def test_files_never_sent_raw_webhook_bodies_and_finished_deliveries_expire(
    tenant_a, media
) -> None:
    now = timezone.now()
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        stale = attach(conversation, message=None, at=now - days(91))
        fresh = attach(conversation, message=None, at=now - days(5))
        channel = ChannelFactory.create()
        events = {
            status: InboundEvent.objects.create(
                channel=channel,
                provider_event_id=status,
                body="{}",
                content_type="json",
                status=status,
            )
            for status in ("processed", "failed", "received")
        }
        InboundEvent.objects.update(received_at=now - days(95))
        subscription = WebhookSubscription.objects.create(
            url="https://example.com/hook", events=["message.created"], secret="s" * 32
        )
        deliveries = {
            status: WebhookDelivery.objects.create(
                subscription=subscription, event="message.created", payload={}, status=status
            )
            for status in ("succeeded", "dead", "pending", "failed")
        }
        WebhookDelivery.objects.update(created_at=now - days(95))
        run = retention_apply(now=now)
        assert _work(run) == {
            **ZERO_WORK,
            "attachments_deleted": 1,
            "files_deleted": 1,
            "inbound_events_deleted": 2,
            "webhook_deliveries_deleted": 2,
        }
        assert not Path(stale.file.path).exists()
        assert Path(fresh.file.path).exists()
        # Work still in progress is never cut short.
        assert list(InboundEvent.objects.values_list("pk", flat=True)) == [events["received"].pk]
        assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {
            "pending",
            "failed",
        }
        assert deliveries


def test_each_tenant_keeps_its_own_policy(tenant_a, tenant_b) -> None:
    now = timezone.now()
    _set_tenant(tenant_b, retention_days=30)
    with tenant_a.schema():
        in_a = say(ConversationFactory.create(), "a", at=now - days(40))
    with tenant_b.schema():
        in_b = say(ConversationFactory.create(), "b", at=now - days(40))
        assert _work(retention_apply(now=now))["messages_soft_deleted"] == 1
        assert Message.objects.get(pk=in_b.pk).deleted_at == now
    with tenant_a.schema():
        # B's run touched nothing of A's, and A's own policy keeps 40-day-old messages.
        assert Message.objects.get(pk=in_a.pk).deleted_at is None
        assert not RetentionRun.objects.exists()
        assert _work(retention_apply(now=now)) == ZERO_WORK


def test_the_daily_job_runs_the_policy_and_records_it(tenant_a, tenant_b) -> None:
    now = timezone.now()
    with tenant_b.schema():
        foreign = say(ConversationFactory.create(), "b", at=now - days(200))
    with tenant_a.schema():
        say(ConversationFactory.create(), "a", at=now - days(200))
        run = job_run(job="retention.apply")
        assert run is not None
        assert run.status == JobRun.Status.SUCCEEDED
        assert run.result["messages_soft_deleted"] == 1
        assert RetentionRun.objects.filter(pk=run.result["run"]).exists()
    with tenant_b.schema():
        assert Message.objects.get(pk=foreign.pk).deleted_at is None
        assert not RetentionRun.objects.exists()
