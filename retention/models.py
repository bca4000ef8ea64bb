from __future__ import annotations

import uuid

from django.db import models

from conversations.models import Conversation


class RetentionRun(models.Model):
    """The audit record of one deletion: a run of the tenant's retention policy, or the erasure
    of one contact's data. `counts` says how many of each kind went (`messages_soft_deleted`,
    `messages_hard_deleted`, `attachments_deleted`, `files_deleted`, …); never edited."""

    class Kind(models.TextChoices):
        POLICY = "policy", "retention policy"
        CONTACT_ERASE = "contact_erase", "contact erasure"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=Kind.choices, db_index=True)
    # The erased contact's id; empty for a policy run. Not a foreign key: the record outlives it.
    subject = models.CharField(max_length=100, blank=True)
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    cutoff = models.DateTimeField(
        null=True, blank=True, help_text="Messages created before this were due."
    )
    counts = models.JSONField(default=dict)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.started_at:%Y-%m-%d %H:%M}"


class HeldConversation(Conversation):
    """Conversations as the legal-hold page of the admin lists them (a proxy: no table)."""

    class Meta:
        proxy = True
        verbose_name = "legal hold"
        verbose_name_plural = "legal holds"
