from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from hub.fields import EncryptedJSONField
from retention.encryption import TenantEncryptedTextField


class ChannelKind(models.TextChoices):
    WHATSAPP = "whatsapp", "WhatsApp"
    INSTAGRAM = "instagram", "Instagram"
    MESSENGER = "messenger", "Messenger"
    TELEGRAM = "telegram", "Telegram"
    SLACK = "slack", "Slack"
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"
    SIGNAL = "signal", "Signal"
    WEBCHAT = "webchat", "Web chat"
    API = "api", "API"


def new_channel_token() -> str:
    return secrets.token_urlsafe(24)


class Channel(models.Model):
    """Where a tenant's customers reach it: one provider account, one webhook URL."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=ChannelKind.choices)
    name = models.CharField(max_length=200)
    # Credentials live here, encrypted at rest; the API never echoes the secret ones.
    config = EncryptedJSONField(default=dict, blank=True)
    channel_token = models.CharField(
        max_length=64, unique=True, default=new_channel_token, editable=False
    )
    agent = models.ForeignKey(
        "agents.Agent", null=True, blank=True, on_delete=models.SET_NULL, related_name="channels"
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def webhook_url(self, *, tenant_slug: str) -> str:
        return f"{settings.HUB_PUBLIC_URL}/webhooks/{tenant_slug}/{self.kind}/{self.channel_token}/"


class InboundEvent(models.Model):
    """A provider's webhook body, committed before the provider gets its 2xx: the durable inbox.

    Keyed by the provider's own event id, so a redelivery is recognised and processed once.
    """

    class Status(models.TextChoices):
        RECEIVED = "received"
        PROCESSED = "processed"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="inbound_events")
    provider_event_id = models.CharField(max_length=255)
    # Holds customers' messages: encrypted at rest while the tenant encrypts them.
    body = TenantEncryptedTextField(help_text="The raw body, exactly as received.")
    content_type = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # When a task for it was last handed to the workers; empty when that failed (the broker was
    # down) or its attempt failed. The sweep re-queues by it (channels_app.selectors).
    queued_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "provider_event_id"], name="inbound_event_unique"
            )
        ]
        # Not `db_index`, which adds a `LIKE` twin no query reads (docs/performance.md, change 42).
        indexes = [models.Index(fields=["status"], name="inbound_event_status")]

    def __str__(self) -> str:
        return f"{self.channel.kind} {self.provider_event_id}"


class DeadLetter(models.Model):
    """An outbound message that exhausted its delivery attempts: kept for operators to inspect
    and requeue."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    message = models.ForeignKey(
        "conversations.Message", on_delete=models.CASCADE, related_name="dead_letters"
    )
    attempts = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    requeued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"message {self.message_id}: {self.error_code}"
