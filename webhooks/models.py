"""Outgoing webhooks: what an integrator subscribed to, each delivery and each attempt at it.
Everything lives in the tenant's schema."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MinLengthValidator
from django.db import models

from hub.fields import EncryptedTextField
from retention.encryption import TenantEncryptedJSONField
from webhooks.events import WEBHOOK_EVENTS
from webhooks.signing import SECRET_MIN_LENGTH


def validate_webhook_events(value: Any) -> None:
    # A validator rather than `choices`, so that adding an event needs no migration.
    unknown = sorted({name for name in value or [] if name not in WEBHOOK_EVENTS})
    if unknown:
        raise ValidationError(f"Unknown event(s): {', '.join(unknown)}.")
    if not value:
        raise ValidationError("Subscribe to at least one event.")


class WebhookSubscription(models.Model):
    """An integrator's endpoint and the events it wants, signed with its own secret."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.CharField(max_length=2000)
    # Encrypted at rest; shown to the integrator once, in the create response.
    secret = EncryptedTextField(
        validators=[MinLengthValidator(SECRET_MIN_LENGTH), MaxLengthValidator(255)]
    )
    events = ArrayField(
        models.CharField(max_length=100), validators=[validate_webhook_events], default=list
    )
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [GinIndex(fields=["events"], name="webhooks_sub_events_gin")]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event for one subscription, retried until it succeeds or its window closes."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        # The last attempt failed; another is due at `next_attempt_at`.
        FAILED = "failed", "failed (retrying)"
        # Given up on: the retry window closed or the destination is refused. Requeueable.
        DEAD = "dead"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=100)
    # One id per domain event: the deliveries of one event to several subscriptions share it.
    event_id = models.UUIDField(default=uuid.uuid4)
    # Message contents and leads: encrypted at rest while the tenant encrypts messages.
    payload = TenantEncryptedJSONField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["subscription", "-created_at"], name="webhooks_del_sub_created"),
            models.Index(
                fields=["next_attempt_at"],
                name="webhooks_del_due",
                condition=models.Q(status__in=["pending", "failed"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.subscription_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a delivery: what came back, or why nothing did."""

    SNIPPET_LENGTH = 1000

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    response_snippet = models.TextField(blank=True)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhooks_attempt_number")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
