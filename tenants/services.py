"""Writes on tenants, their domains and API keys (public schema)."""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from hub.exceptions import ApplicationError, ConflictError
from hub.memo import memo_forget
from tenants.models import ApiKey, Domain, Tenant
from tenants.selectors import api_key_cache_key, tenant_memo_forget

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9_]{2,62}$")
RESERVED_SLUGS = {"public", "information_schema", "admin", "api", "static", "www"}
KEY_ALPHABET = string.ascii_letters + string.digits
LAST_USED_GRANULARITY = timedelta(minutes=1)


class InvalidSlug(ApplicationError):
    default_code = "invalid_slug"


class TenantExists(ConflictError):
    default_code = "tenant_exists"


@dataclass(frozen=True)
class ProvisionedTenant:
    tenant: Tenant
    api_key: str


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    raw_key: str


def hash_api_key(raw_key: str) -> str:
    # Keys carry 190 bits of randomness; a fast hash is enough and keeps auth off the hot path.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def tenant_slug_validate(*, slug: str) -> None:
    if not SLUG_PATTERN.match(slug) or slug in RESERVED_SLUGS or slug.startswith("pg_"):
        raise InvalidSlug(
            f"Invalid slug {slug!r}: use 3-63 characters of a-z, 0-9 and _, starting with a "
            "letter (not 'public' or another reserved name)."
        )


def tenant_template_ensure() -> Tenant:
    """The migrated schema new tenants are cloned from; created (and fully migrated) once."""
    template = Tenant.objects.filter(schema_name=settings.TENANT_BASE_SCHEMA).first()
    if template is None:
        template = Tenant(
            schema_name=settings.TENANT_BASE_SCHEMA,
            name="Template for new tenants",
            is_template=True,
            is_active=False,
        )
        template.save(verbosity=0)
    return template


@transaction.atomic
def tenant_provision(
    *, slug: str, name: str, credits: int = 0, domain: str | None = None
) -> ProvisionedTenant:
    """Creates the tenant, its schema (cloned from the template), a domain and its first API key.

    All or nothing: a failure leaves no row and no schema behind.
    """
    tenant_slug_validate(slug=slug)
    if Tenant.objects.filter(schema_name=slug).exists():
        raise TenantExists(f"A tenant with the slug {slug!r} already exists.")
    if domain and Domain.objects.filter(domain=domain).exists():
        raise ConflictError(
            f"The domain {domain!r} already belongs to a tenant.", code="domain_taken"
        )
    tenant_template_ensure()
    tenant = Tenant(schema_name=slug, name=name)
    tenant.save(verbosity=0)
    if domain:
        Domain.objects.create(domain=domain, tenant=tenant, is_primary=True)
    issued = api_key_issue(tenant=tenant, name="default")
    if credits:
        from billing.services import credit_add

        with schema_context(slug):
            credit_add(amount=credits, reason="initial grant")
    return ProvisionedTenant(tenant=tenant, api_key=issued.raw_key)


def tenant_suspend(*, tenant: Tenant) -> Tenant:
    tenant.is_active = False
    tenant.suspended_at = timezone.now()
    tenant.save(update_fields=["is_active", "suspended_at"])
    tenant_memo_forget(tenant=tenant)
    return tenant


def tenant_reactivate(*, tenant: Tenant) -> Tenant:
    tenant.is_active = True
    tenant.suspended_at = None
    tenant.save(update_fields=["is_active", "suspended_at"])
    tenant_memo_forget(tenant=tenant)
    return tenant


def api_key_issue(*, tenant: Tenant, name: str = "default") -> IssuedApiKey:
    """A new key for the tenant. The raw key is returned here and never again."""
    prefix = "".join(secrets.choice(KEY_ALPHABET) for _ in range(8))
    raw_key = f"hub_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        tenant=tenant, name=name, prefix=prefix, hashed_key=hash_api_key(raw_key)
    )
    return IssuedApiKey(api_key=api_key, raw_key=raw_key)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        memo_forget(api_key_cache_key(api_key.prefix))
    return api_key


def api_key_touch(*, api_key: ApiKey) -> None:
    """Records use at most once a minute per key, so authentication stays one read."""
    now = timezone.now()
    if api_key.last_used_at and now - api_key.last_used_at < LAST_USED_GRANULARITY:
        return
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now
