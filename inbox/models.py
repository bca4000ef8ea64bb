from __future__ import annotations

import uuid

from django.db import models

from retention.encryption import TenantEncryptedTextField


class Notification(models.Model):
    """Something operators must know about (a handoff, low credits, a dead letter), recorded
    and pushed to the live inbox."""

    class Kind(models.TextChoices):
        HANDOFF = "handoff"
        LOW_CREDITS = "low_credits"
        DEAD_LETTER = "dead_letter"
        EXTRACTION_FAILING = "extraction_failing"
        TASK = "task"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    # Both may quote the customer (a task's request, a handoff's summary): encrypted at rest
    # while the tenant encrypts messages.
    title = TenantEncryptedTextField(max_length=200)
    body = TenantEncryptedTextField(blank=True)
    conversation = models.ForeignKey(
        "conversations.Conversation",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    # Empty: for every operator of the tenant.
    operator = models.ForeignKey(
        "conversations.Operator",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
    )
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.title}"


class CannedResponse(models.Model):
    """A saved reply: operators type `/<shortcut>` in the composer to insert its text."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    shortcut = models.CharField(
        max_length=50,
        unique=True,
        help_text="Lowercase letters, digits, '-' and '_'; typed after '/' in the composer.",
    )
    text = models.TextField(max_length=4096)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["shortcut"]

    def __str__(self) -> str:
        return f"/{self.shortcut}"
