from __future__ import annotations

import datetime
import re
import uuid
import zoneinfo

from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin
from django_tenants.postgresql_backend.base import _check_schema_name
from django_tenants.utils import get_creation_fakes_migrations, schema_exists

from tenants.connection import tenant_connection
from tenants.schema_clone import schema_clone

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOUR = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone such as Europe/Lisbon.")


def validate_business_hours(value: object) -> None:
    """`{"mon": [["09:00", "17:00"]], …}`: per weekday, opening intervals in local time, in
    order and not overlapping; a missing or empty day is closed, `{}` means always open."""
    if not isinstance(value, dict):
        raise ValidationError('Must be an object such as {"mon": [["09:00", "17:00"]]}.')
    if unknown := sorted(set(value) - set(WEEKDAYS)):
        raise ValidationError(f"Unknown day(s): {', '.join(unknown)}. Use {', '.join(WEEKDAYS)}.")
    for day, intervals in value.items():
        if not isinstance(intervals, list) or len(intervals) > 10:
            raise ValidationError(f"{day}: a list of at most 10 [start, end] pairs.")
        previous_end = ""
        for interval in intervals:
            if (
                not isinstance(interval, list)
                or len(interval) != 2
                or not all(isinstance(t, str) and _HOUR.match(t) for t in interval)
            ):
                raise ValidationError(f'{day}: each interval is ["HH:MM", "HH:MM"] (24:00 ends).')
            start, end = interval
            if start == "24:00" or start >= end:
                raise ValidationError(f"{day}: {start}-{end} must start before it ends.")
            if start < previous_end:
                raise ValidationError(f"{day}: intervals must be in order and not overlap.")
            previous_end = end


def validate_holidays(value: object) -> None:
    if not isinstance(value, list) or len(value) > 366:
        raise ValidationError('Must be a list of at most 366 dates such as ["2026-12-25"].')
    for item in value:
        try:
            datetime.date.fromisoformat(item)
        except (TypeError, ValueError) as error:
            raise ValidationError(f"{item!r} is not a date (YYYY-MM-DD).") from error


class Tenant(TenantMixin):
    """A business using the hub. Its slug is its PostgreSQL schema name."""

    name = models.CharField(max_length=200)
    is_active = models.BooleanField(
        default=True, help_text="A suspended tenant keeps its data but is refused everywhere."
    )
    suspended_at = models.DateTimeField(null=True, blank=True)
    # The migrated schema new tenants are cloned from; never routed to, never listed.
    is_template = models.BooleanField(default=False, editable=False)
    max_group_participants = models.PositiveSmallIntegerField(
        default=8, help_text="The most participants a group conversation may hold."
    )
    # Lead extraction and data retention (docs/extraction.md, docs/retention.md).
    extraction_enabled = models.BooleanField(
        default=True, help_text="Extract leads from conversations once they go quiet."
    )
    extraction_idle_minutes = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(5), MaxValueValidator(15)],
        help_text="Minutes without a message before a conversation is extracted (5-15). "
        "Empty: the platform default (HUB_EXTRACTION_IDLE_MINUTES).",
    )
    extraction_updates_contact = models.BooleanField(
        default=False,
        help_text="Write the fields a customer confirmed into their contact's attributes.",
    )
    retention_days = models.PositiveIntegerField(
        default=90,
        validators=[MinValueValidator(1)],
        help_text="Messages older than this are deleted (after a 7-day audit window).",
    )
    message_encryption = models.BooleanField(
        default=False,
        help_text="Store message bodies encrypted (HUB_FIELD_KEYS). Full-text search of "
        "messages then finds nothing.",
    )
    # Business hours: handoffs are assigned to operators within them; outside them the contact
    # is told when a person will answer (docs/agents.md).
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text="The time zone of the business hours and holidays, e.g. Europe/Lisbon.",
    )
    business_hours = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_business_hours],
        help_text='Per weekday, e.g. {"mon": [["09:00", "12:30"], ["14:00", "18:00"]], '
        '"sat": [["10:00", "14:00"]]}. A day left out is closed; {} means always open.',
    )
    holidays = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_holidays],
        help_text='Closed all day, e.g. ["2026-12-25", "2027-01-01"].',
    )
    out_of_hours_message = models.TextField(
        blank=True,
        max_length=1000,
        help_text="Told to a contact handed to a person out of hours; {next_opening} is "
        "replaced by the next opening time. Empty: a built-in message in the contact's language.",
    )
    # Credits (docs/handlers.md): set by the platform; empty means the platform default.
    credits_per_reply = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: the platform default (HUB_CREDITS_PER_REPLY)."
    )
    credits_per_1k_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: the platform default (HUB_CREDITS_PER_1K_TOKENS)."
    )
    low_credits_threshold = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Operators are told, and credits.low is sent, when the balance falls below "
        "this. Empty: the platform default (HUB_CREDITS_LOW_BALANCE).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    auto_create_schema = True

    class Meta:
        ordering = ["schema_name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.schema_name})"

    @property
    def slug(self) -> str:
        return self.schema_name

    def create_schema(
        self, check_if_exists: bool = False, sync_schema: bool = True, verbosity: int = 1
    ) -> bool | None:
        """django-tenants' own, except that a schema copied from the template is copied by
        `schema_clone`, whose time does not grow with the number of tenants (django-tenants'
        `clone_schema()` took 8-10 s at 1,000), and that migrations it lacks are applied."""
        base_schema = self.get_base_schema() if get_creation_fakes_migrations() else None
        if not (sync_schema and isinstance(base_schema, str) and schema_exists(base_schema)):
            return super().create_schema(
                check_if_exists=check_if_exists, sync_schema=sync_schema, verbosity=verbosity
            )
        _check_schema_name(self.schema_name)
        if check_if_exists and schema_exists(self.schema_name):
            return False
        if schema_exists(self.schema_name, case_sensitive=False):
            raise ValidationError("New schema name already exists")
        schema_clone(source=base_schema, target=self.schema_name)
        # django-tenants fakes the migrations here, recording as applied any the template has not
        # had yet (code deployed, `migrate_schemas` not run yet) without making their changes, for
        # good. Applied for real they make the tenant whole; when the template is up to date there
        # is nothing to apply and the run is skipped (tenants.migration_executor).
        call_command(
            "migrate_schemas",
            tenant=True,
            schema_name=self.schema_name,
            interactive=False,
            verbosity=verbosity,
        )
        tenant_connection().set_schema_to_public()
        return None


class Domain(DomainMixin):
    """A host name that routes to a tenant's pages, besides `/t/<slug>/`."""


class ApiKey(models.Model):
    """A tenant's key for the REST API. Only a hash is kept; the key is shown once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_key = models.CharField(max_length=64, editable=False)
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: the platform default."
    )
    can_manage_credits = models.BooleanField(
        default=False,
        help_text="May add credits to its tenant (POST /api/v1/credits/add/). Only the platform "
        "admin sets it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"hub_{self.prefix}_… ({self.name})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None
