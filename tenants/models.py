from __future__ import annotations

import uuid

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


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
    created_at = models.DateTimeField(auto_now_add=True)

    auto_create_schema = True

    class Meta:
        ordering = ["schema_name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.schema_name})"

    @property
    def slug(self) -> str:
        return self.schema_name


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
