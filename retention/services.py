"""Deleting what a tenant no longer keeps: its retention policy, run daily, and the erasure of
one contact's data. Both write one `RetentionRun` audit record with their counts per kind.

Messages go in two steps. Past the policy they are soft-deleted (`deleted_at` set: hidden from
the API and the inbox, still in the database); once they have been soft-deleted for the audit
window (`HUB_RETENTION_AUDIT_DAYS`, 7 by default) the rows and their attachment files are
deleted for good. Conversations under legal hold are skipped by both steps.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from automation.models import AssessmentRun, Reminder, Task
from channels_app.models import InboundEvent
from conversations.models import Attachment, Contact, Conversation, Message
from conversations.services.messages import ERASED_CONTENT
from extraction.models import Extraction
from hub.exceptions import ConflictError
from inbox.models import Notification
from processing.models import RoutingDecision
from retention.encryption import (
    ENVELOPE,
    TOKEN,
    TenantEncryptedJSONField,
    message_encryption_on,
)
from retention.models import RetentionRun
from tenants.selectors import tenant_current
from webhooks.models import WebhookDelivery

logger = logging.getLogger(__name__)

# Rows per statement: big enough to be quick, small enough that no batch holds locks for long.
BATCH = 1000


class LegalHold(ConflictError):
    default_code = "legal_hold"
    default_detail = (
        "A conversation of this contact is under legal hold; lift the hold before erasing."
    )


def attachments_delete(*, attachments: QuerySet[Attachment]) -> tuple[int, int]:
    """Deletes these attachments' files, then their rows. Returns `(rows, files)`.

    Files first: should the rows' deletion fail, a row points at a missing file, which the next
    run deletes; the other order could leave a file that no row names any more."""
    rows = files = 0
    while batch := list(attachments.order_by("pk")[:BATCH]):
        for attachment in batch:
            if attachment.file.name:
                # Storage backends treat a missing file as deleted.
                attachment.file.delete(save=False)
                files += 1
        rows += Attachment.objects.filter(pk__in=[a.pk for a in batch]).delete()[0]
    return rows, files


def messages_erase(*, messages: QuerySet[Message], now: datetime) -> dict[str, int]:
    """Empties these messages' content and deletes their files at once, keeping the rows (so
    a conversation's counts and seqs stay)."""
    attachments, files = attachments_delete(
        attachments=Attachment.objects.filter(message__in=messages)
    )
    erased = messages.update(content=ERASED_CONTENT, text="", deleted_at=now, updated_at=now)
    return {"messages_erased": erased, "attachments_deleted": attachments, "files_deleted": files}


@transaction.atomic
def contact_data_erase(*, contact: Contact, now: datetime | None = None) -> RetentionRun:
    """Erases what the hub holds of a contact's conversations: every message's content and
    file, the files uploaded but never sent, and the leads extracted from them. Refused (409
    `legal_hold`) while one of its conversations is under legal hold, before anything changes.
    The contact's own fields are the caller's (`conversations.services.contacts.contact_erase`)."""
    started = now or timezone.now()
    conversations = Conversation.objects.filter(contact=contact)
    held = list(conversations.filter(legal_hold=True).values_list("pk", flat=True))
    if held:
        raise LegalHold(details={"conversations": [str(pk) for pk in held]})
    counts = Counter(
        messages_erase(messages=Message.objects.filter(conversation__in=conversations), now=started)
    )
    attachments, files = attachments_delete(
        attachments=Attachment.objects.filter(conversation__in=conversations, message__isnull=True)
    )
    counts.update(attachments_deleted=attachments, files_deleted=files)
    counts["extractions_deleted"] = Extraction.objects.filter(
        conversation__in=conversations
    ).delete()[0]
    return RetentionRun.objects.create(
        kind=RetentionRun.Kind.CONTACT_ERASE,
        subject=str(contact.pk),
        counts=dict(counts),
        started_at=started,
        finished_at=timezone.now(),
    )


def _in_batches(queryset: QuerySet[Any], action: Any) -> int:
    """Applies `action` to the primary keys of `queryset`, a batch at a time, each batch in its
    own transaction, until none match. Returns the sum of what `action` returned."""
    done = 0
    while pks := list(queryset.order_by("pk").values_list("pk", flat=True)[:BATCH]):
        with transaction.atomic():
            done += action(pks)
    return done


def retention_apply(*, now: datetime | None = None) -> RetentionRun:
    """Runs the current tenant's retention policy once and records it.

    - messages created before `now - Tenant.retention_days` are soft-deleted;
    - those soft-deleted for longer than the audit window are deleted, with their attachment
      files; so are files uploaded into a conversation but never sent, once past the policy;
    - raw inbound webhook bodies (processed or failed) and finished outgoing webhook deliveries
      past the policy are deleted (both hold message bodies);
    - message bodies and the rows that copy them (raw inbound bodies, outgoing webhook
      payloads, extracted leads, notifications, tasks, reminders, assessment answers) are
      brought in line with the tenant's encryption setting.

    Conversations under legal hold are skipped by the steps that touch their rows. Idempotent:
    a second run at the same `now` finds nothing left to do. Batched, so a run interrupted
    half-way leaves consistent rows, and the next run carries on.
    """
    started = timezone.now()
    now = now or started
    tenant = tenant_current()
    cutoff = now - timedelta(days=tenant.retention_days)
    purge_before = now - timedelta(days=settings.HUB_RETENTION_AUDIT_DAYS)
    counts: Counter[str] = Counter()

    due = Message.objects.filter(created_at__lt=cutoff).exclude(conversation__legal_hold=True)
    counts["messages_soft_deleted"] = _in_batches(
        due.filter(deleted_at__isnull=True),
        lambda pks: Message.objects.filter(pk__in=pks).update(deleted_at=now),
    )

    def purge(pks: list[Any]) -> int:
        attachments, files = attachments_delete(
            attachments=Attachment.objects.filter(message_id__in=pks)
        )
        counts.update(attachments_deleted=attachments, files_deleted=files)
        return Message.objects.filter(pk__in=pks).delete()[1].get(Message._meta.label, 0)

    counts["messages_hard_deleted"] = _in_batches(due.filter(deleted_at__lt=purge_before), purge)
    attachments, files = attachments_delete(
        attachments=Attachment.objects.filter(message__isnull=True, created_at__lt=cutoff).exclude(
            conversation__legal_hold=True
        )
    )
    counts.update(attachments_deleted=attachments, files_deleted=files)
    counts["inbound_events_deleted"] = _in_batches(
        InboundEvent.objects.filter(
            received_at__lt=cutoff,
            status__in=[InboundEvent.Status.PROCESSED, InboundEvent.Status.FAILED],
        ),
        lambda pks: InboundEvent.objects.filter(pk__in=pks).delete()[0],
    )
    counts["webhook_deliveries_deleted"] = _in_batches(
        WebhookDelivery.objects.filter(
            created_at__lt=cutoff,
            status__in=[WebhookDelivery.Status.SUCCEEDED, WebhookDelivery.Status.DEAD],
        ),
        lambda pks: (
            WebhookDelivery.objects.filter(pk__in=pks)
            .delete()[1]
            .get(WebhookDelivery._meta.label, 0)
        ),
    )
    counts.update(encryption_align())
    counts["conversations_on_hold"] = Conversation.objects.filter(legal_hold=True).count()
    counts["messages_held"] = Message.objects.filter(
        created_at__lt=cutoff, conversation__legal_hold=True
    ).count()
    run = RetentionRun.objects.create(
        kind=RetentionRun.Kind.POLICY,
        retention_days=tenant.retention_days,
        cutoff=cutoff,
        counts=dict(counts),
        started_at=started,
        finished_at=timezone.now(),
    )
    logger.info("retention applied", extra={"counts": run.counts})
    return run


@dataclass(frozen=True)
class _EncryptedKind:
    """A model whose columns follow the tenant's encryption setting, as the audit counts it."""

    kind: str
    model: type[Model]
    fields: tuple[str, ...]
    # Rows per statement: raw inbound bodies may be mails of up to 25 MB each.
    batch: int = BATCH

    def stored_encrypted(self, name: str) -> Q:
        field = self.model._meta.get_field(name)
        if isinstance(field, TenantEncryptedJSONField):
            return Q(**{f"{name}__has_key": ENVELOPE})
        return Q(**{f"{name}__regex": TOKEN.pattern})

    def pending(self, *, encrypt: bool) -> Q:
        """The rows stored the other way than the setting asks, in any of the columns."""
        pending = Q()
        for name in self.fields:
            if encrypt:
                # An empty text stays empty when encrypted.
                plain = ~self.stored_encrypted(name)
                if not isinstance(self.model._meta.get_field(name), TenantEncryptedJSONField):
                    plain &= ~Q(**{name: ""})
                pending |= plain
            else:
                pending |= self.stored_encrypted(name)
        return pending


ENCRYPTED_KINDS = (
    _EncryptedKind("messages", Message, ("content", "text")),
    _EncryptedKind("inbound_events", InboundEvent, ("body",), batch=BATCH // 10),
    _EncryptedKind("webhook_deliveries", WebhookDelivery, ("payload",)),
    _EncryptedKind("extractions", Extraction, ("data", "dropped", "changes")),
    _EncryptedKind("notifications", Notification, ("title", "body")),
    _EncryptedKind("tasks", Task, ("title", "description")),
    _EncryptedKind("reminders", Reminder, ("text",)),
    _EncryptedKind("assessment_runs", AssessmentRun, ("answers",)),
    _EncryptedKind("routing_decisions", RoutingDecision, ("entities",)),
)


def encryption_align(*, limit: int = 50 * BATCH) -> dict[str, int]:
    """Rewrites, per kind, up to `limit` rows stored the other way than the tenant's setting:
    encrypts plaintext rows when encryption is on, decrypts encrypted rows when it is off (so
    search finds messages again). The fields do the work on write; reading decrypts either
    way. Each row is visited once per run, in primary-key order, a batch per transaction."""
    encrypt = message_encryption_on()
    suffix = "encrypted" if encrypt else "decrypted"
    counts: dict[str, int] = {}
    for spec in ENCRYPTED_KINDS:
        pending = spec.model._default_manager.filter(spec.pending(encrypt=encrypt)).order_by("pk")
        rewritten = 0
        after: Any = None
        while rewritten < limit:
            rows = pending if after is None else pending.filter(pk__gt=after)
            batch = list(rows.only("pk", *spec.fields)[: min(spec.batch, limit - rewritten)])
            if not batch:
                break
            with transaction.atomic():
                spec.model._default_manager.bulk_update(batch, spec.fields)
            rewritten += len(batch)
            after = batch[-1].pk
        counts[f"{spec.kind}_{suffix}"] = rewritten
    return counts


@transaction.atomic
def conversations_legal_hold_set(*, conversation_ids: list[Any], hold: bool) -> int:
    """Places these conversations under legal hold (or lifts it). Returns how many changed."""
    return (
        Conversation.objects.filter(pk__in=conversation_ids)
        .exclude(legal_hold=hold)
        .update(legal_hold=hold, updated_at=timezone.now())
    )
