"""The conversation domain: operators, contacts and their identities, conversations, participants,
messages and attachments. Everything here lives in the tenant's schema."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Coalesce

from channels_app.models import ChannelKind
from hub.db import FastLoadingModel
from retention.encryption import TenantEncryptedJSONField, TenantEncryptedTextField


class Operator(FastLoadingModel):
    """A tenant user who answers conversations in the inbox."""

    class Role(models.TextChoices):
        ADMIN = "admin"
        OPERATOR = "operator"

    class Availability(models.TextChoices):
        ONLINE = "online"
        AWAY = "away"
        OFFLINE = "offline"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="operator"
    )
    display_name = models.CharField(max_length=100)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.OPERATOR)
    availability = models.CharField(
        max_length=20, choices=Availability.choices, default=Availability.OFFLINE
    )
    capacity = models.PositiveSmallIntegerField(
        default=10, help_text="The most open conversations assigned to this operator at once."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["display_name"]

    def __str__(self) -> str:
        return self.display_name


class Contact(FastLoadingModel):
    """A customer, whatever channels they write from (one identity per channel account)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True, db_index=True)
    phone = models.CharField(max_length=32, blank=True, db_index=True, help_text="E.164")
    avatar_url = models.URLField(max_length=1000, blank=True)
    language = models.CharField(max_length=20, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or self.email or self.phone or str(self.id)


class ContactIdentity(FastLoadingModel):
    """How a channel knows the contact: a phone number, a Telegram id, an email, a visitor id."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities")
    channel_kind = models.CharField(max_length=20, choices=ChannelKind.choices)
    external_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel_kind", "external_id"], name="contact_identity_unique"
            )
        ]
        verbose_name_plural = "contact identities"

    def __str__(self) -> str:
        return f"{self.channel_kind}:{self.external_id}"


class Conversation(FastLoadingModel):
    class Type(models.TextChoices):
        DIRECT = "direct"
        GROUP = "group"
        BUSINESS = "business"

    class Status(models.TextChoices):
        OPEN = "open"
        PENDING = "pending"
        SNOOZED = "snoozed"
        RESOLVED = "resolved"

    class Priority(models.IntegerChoices):
        NONE = 0
        LOW = 1
        MEDIUM = 2
        HIGH = 3
        URGENT = 4

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    channel = models.ForeignKey(
        "channels_app.Channel", on_delete=models.PROTECT, related_name="conversations"
    )
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="conversations")
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.DIRECT)
    # Found by status through the status-led indexes below, not an index of its own: every
    # index is written on each of the 2 updates a message makes (docs/performance.md, change 42).
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NONE)
    assignee = models.ForeignKey(
        Operator, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversations"
    )
    labels = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    ai_active = models.BooleanField(
        default=True, help_text="The AI answers; off once a human has taken over."
    )
    legal_hold = models.BooleanField(
        default=False,
        help_text="Kept whole: retention deletes nothing of it and its contact cannot be erased.",
    )
    # Looked up with its contact, whose index finds the contact's few conversations.
    provider_thread_id = models.CharField(max_length=255, blank=True)
    llm_conversation_id = models.CharField(max_length=255, blank=True, editable=False)
    # The seq of the newest message; bumped under this row's lock so seqs are gap-free.
    last_seq = models.BigIntegerField(default=0, editable=False)
    last_message = models.ForeignKey(
        "Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    last_activity_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-last_activity_at"]
        indexes = [
            GinIndex(fields=["labels"], name="conversation_labels_gin"),
            models.Index(
                fields=["status", "-last_activity_at"], name="conversation_status_activity"
            ),
            # The order of the API's and the inbox's lists (`activity_at` in selectors.py, then
            # the id): a page is read in index order instead of sorting every conversation.
            models.Index(
                Coalesce("last_activity_at", "created_at").desc(),
                F("id").desc(),
                name="conversation_activity_idx",
            ),
            # The same order within one status, so that a status few conversations have
            # (`?status=snoozed`) is read from its own range rather than by filtering them all.
            models.Index(
                F("status"),
                Coalesce("last_activity_at", "created_at").desc(),
                F("id").desc(),
                name="conversation_status_act_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contact} on {self.channel}"


class Participant(FastLoadingModel):
    """Someone in a conversation: a contact, an operator, or an integrator's API key (which only
    keeps its read position)."""

    class Role(models.TextChoices):
        CUSTOMER = "customer"
        AGENT = "agent"
        BUSINESS = "business"
        MEMBER = "member"
        ADMIN = "admin"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="participants"
    )
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.CASCADE)
    operator = models.ForeignKey(Operator, null=True, blank=True, on_delete=models.CASCADE)
    api_key_id = models.UUIDField(null=True, blank=True)
    role = models.CharField(max_length=20, choices=Role.choices)
    last_read_seq = models.BigIntegerField(default=0)
    muted = models.BooleanField(default=False)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(contact__isnull=False, operator__isnull=True, api_key_id__isnull=True)
                    | Q(contact__isnull=True, operator__isnull=False, api_key_id__isnull=True)
                    | Q(contact__isnull=True, operator__isnull=True, api_key_id__isnull=False)
                ),
                name="participant_is_one_kind",
            ),
            models.UniqueConstraint(
                fields=["conversation", "contact"],
                name="participant_contact_unique",
                condition=Q(contact__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["conversation", "operator"],
                name="participant_operator_unique",
                condition=Q(operator__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["conversation", "api_key_id"],
                name="participant_api_key_unique",
                condition=Q(api_key_id__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        who = self.contact or self.operator or f"API key {self.api_key_id}"
        return f"{who} ({self.role})"


class Message(FastLoadingModel):
    class Direction(models.TextChoices):
        IN = "in"
        OUT = "out"

    class SenderType(models.TextChoices):
        CONTACT = "contact"
        AI = "ai"
        OPERATOR = "operator"
        SYSTEM = "system"

    class Status(models.TextChoices):
        RECEIVED = "received"
        PENDING = "pending"
        SENT = "sent"
        DELIVERED = "delivered"
        READ = "read"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: `message_seq_unique` (conversation, seq) serves every lookup by
    # conversation, and a second index would be written with every message.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    # Kept on the message so a provider's id is unique per channel, as providers issue them.
    channel = models.ForeignKey("channels_app.Channel", on_delete=models.PROTECT, related_name="+")
    seq = models.BigIntegerField()
    direction = models.CharField(max_length=3, choices=Direction.choices)
    sender_type = models.CharField(max_length=10, choices=SenderType.choices)
    sender_contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sender_operator = models.ForeignKey(
        Operator, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Encrypted at rest when the tenant asks for it (retention/encryption.py).
    content = TenantEncryptedJSONField()
    text = TenantEncryptedTextField(blank=True, help_text="What full-text search reads.")
    search_vector = models.GeneratedField(
        expression=SearchVector("text", config="simple"),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    status = models.CharField(max_length=10, choices=Status.choices)
    provider_message_id = models.CharField(max_length=255, blank=True)
    client_id = models.CharField(max_length=100, blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    is_private = models.BooleanField(default=False, help_text="An operators-only note.")
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["conversation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_seq_unique"),
            models.UniqueConstraint(
                fields=["channel", "provider_message_id"],
                name="message_provider_id_unique",
                condition=~Q(provider_message_id=""),
            ),
            models.UniqueConstraint(
                fields=["conversation", "client_id"],
                name="message_client_id_unique",
                condition=~Q(client_id=""),
            ),
        ]
        indexes = [GinIndex(fields=["search_vector"], name="message_search_gin")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.direction} {self.content.get('type', '?')}"


def attachment_path(instance: Attachment, filename: str) -> str:
    from tenants.connection import tenant_connection

    # The schema first: one tenant's files can be listed, moved or erased together.
    schema = tenant_connection().schema_name
    return f"attachments/{schema}/{instance.conversation_id}/{instance.id}/{filename}"


class Attachment(FastLoadingModel):
    """A file in a conversation. Uploaded first (no message yet), then linked by the message
    whose content names its id; a file is linked to one message at most."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="attachments"
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    file = models.FileField(upload_to=attachment_path, max_length=500)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.filename
