"""Lead extraction: the fields a tenant extracts, each conversation's versions of them, and the
state that schedules the runs. Everything here lives in the tenant's schema."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from retention.encryption import TenantEncryptedJSONField

FIELD_NAME = RegexValidator(
    r"^[a-z][a-z0-9_]{0,49}$",
    "Lowercase letters, digits and underscores, starting with a letter (at most 50).",
)


class ExtractionField(models.Model):
    """One field of the tenant's extraction schema (a default lead schema is created with the
    tenant: name, email, phone, company, budget, intent, timeline, notes)."""

    class Type(models.TextChoices):
        STRING = "string"
        EMAIL = "email"
        PHONE = "phone"
        NUMBER = "number"
        DATE = "date"
        ENUM = "enum"
        BOOLEAN = "boolean"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=50, unique=True, validators=[FIELD_NAME])
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.STRING)
    description = models.CharField(
        max_length=500, blank=True, help_text="What the model should look for."
    )
    required = models.BooleanField(
        default=False, help_text="A lead without it is reported as incomplete (`missing`)."
    )
    enum_values = ArrayField(
        models.CharField(max_length=100),
        default=list,
        blank=True,
        size=50,
        help_text="The allowed values of an enum field.",
    )
    position = models.PositiveSmallIntegerField(default=0, help_text="Order in exports.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"

    def clean(self) -> None:
        values = [value.strip() for value in self.enum_values]
        if self.type == self.Type.ENUM:
            if not values or not all(values):
                raise ValidationError({"enum_values": "An enum field needs its allowed values."})
            if len({value.casefold() for value in values}) != len(values):
                raise ValidationError({"enum_values": "The allowed values must differ."})
        elif values:
            raise ValidationError({"enum_values": "Only an enum field has allowed values."})
        self.enum_values = values


class Extraction(models.Model):
    """One version of a conversation's lead: what a run found, what it dropped as invalid, and
    what changed since the version before. Never edited; each run adds a version.

    `data`, `dropped` and `changes` hold the customer's values (names, emails, phones): they are
    encrypted at rest while the tenant encrypts messages, so SQL cannot look into them;
    `found_fields` keeps the names of the fields found, which `?field=` filters on."""

    class Source(models.TextChoices):
        LLM = "llm"
        RULES = "rules", "rule-based"

    class Trigger(models.TextChoices):
        IDLE = "idle"
        MANUAL = "manual"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="extractions"
    )
    contact = models.ForeignKey(
        "conversations.Contact",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="extractions",
    )
    version = models.PositiveIntegerField()
    # {field name: validated value}; a field found nowhere is absent.
    data = TenantEncryptedJSONField(default=dict)
    # The keys of `data`, set on save: names from the tenant's schema, never a customer's value.
    found_fields = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    # The fields the customer stated or confirmed themselves (not inferred).
    confirmed = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    # [{"field", "value", "reason"}]: what the extractor answered that did not validate.
    dropped = TenantEncryptedJSONField(default=list, blank=True)
    # {"added": {field: value}, "changed": {field: {"from", "to"}}, "removed": {field: value}}
    changes = TenantEncryptedJSONField(default=dict, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    # The conversation's last seq when the run read it.
    through_seq = models.BigIntegerField()
    model = models.CharField(max_length=100, blank=True)
    tokens = models.PositiveIntegerField(default=0)
    credits = models.PositiveIntegerField(default=0, help_text="What the run was charged.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "version"], name="extraction_version_unique"
            )
        ]

    def __str__(self) -> str:
        return f"v{self.version} of {self.conversation_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.found_fields = sorted(self.data)
        super().save(*args, **kwargs)


class ExtractionCursor(models.Model):
    """How far a conversation has been extracted, and when a failed run is tried again."""

    conversation = models.OneToOneField(
        "conversations.Conversation",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="extraction_cursor",
    )
    extracted_seq = models.BigIntegerField(default=0)
    # Failed runs in a row, the conversation's last seq at the last of them, and the backoff.
    attempts = models.PositiveSmallIntegerField(default=0)
    attempted_seq = models.BigIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=100, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The run extracting the conversation now, until when (a lease, extraction/services.py).
    held_by = models.UUIDField(null=True, blank=True)
    held_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.conversation_id} extracted to #{self.extracted_seq}"


class ExtractionHealth(models.Model):
    """The tenant's run of failed extractions (one row): operators are notified when it
    reaches `HUB_EXTRACTION_FAILURES_TO_NOTIFY`, once until a run succeeds again."""

    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=100, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "extraction health"

    def __str__(self) -> str:
        return f"{self.consecutive_failures} failure(s) in a row"
