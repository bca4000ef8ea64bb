"""Reads on tenants and API keys (public schema)."""

from __future__ import annotations

import hmac
import re

from hub.db import PreparedQuery
from hub.memo import memo_forget, memo_get
from tenants.models import ApiKey, Domain, Tenant

API_KEY_PATTERN = re.compile(r"^hub_([A-Za-z0-9]{8})_[A-Za-z0-9_-]{20,}$")

# A process's first sight of a tenant, on a thousand tenants (docs/performance.md, change 55).
_TENANT_OF_SCHEMA = PreparedQuery(
    lambda schema_name: Tenant.objects.filter(schema_name=schema_name), schema_name=str
)


def _tenant_of_schema(schema_name: str) -> Tenant | None:
    # A slug is its tenant's schema name: one entry, and one read, serves both lookups.
    return memo_get(
        ("tenant-schema", schema_name), lambda: _TENANT_OF_SCHEMA.first(schema_name=schema_name)
    )


def tenant_get_by_slug(*, slug: str) -> Tenant | None:
    tenant = _tenant_of_schema(slug)
    return None if tenant is None or tenant.is_template else tenant


def tenant_get_by_domain(*, host: str) -> Tenant | None:
    def load() -> Tenant | None:
        domain = (
            Domain.objects.select_related("tenant")
            .filter(domain=host, tenant__is_template=False)
            .first()
        )
        return domain.tenant if domain else None

    return memo_get(("tenant-domain", host), load)


def tenant_memo_forget(*, tenant: Tenant) -> None:
    """Drops what this process remembers of the tenant: its suspension shows here at once."""
    memo_forget(("tenant-schema", tenant.schema_name))
    for host in tenant.domains.values_list("domain", flat=True):
        memo_forget(("tenant-domain", host))
    for prefix in ApiKey.objects.filter(tenant=tenant).values_list("prefix", flat=True):
        memo_forget(api_key_cache_key(prefix))


def tenant_list_active() -> list[Tenant]:
    return list(Tenant.objects.filter(is_active=True, is_template=False))


def api_key_cache_key(prefix: str) -> tuple[str, str]:
    return ("api-key", prefix)


def api_key_get_for_raw_key(*, raw_key: str) -> ApiKey | None:
    """The key a caller presented, with its tenant, if it is well formed and known.

    Read on every API request, so memoised per process like tenants (HUB_TENANT_CACHE_SECONDS):
    a revocation or a suspension made elsewhere takes effect within that long (at once in the
    process that made it), and unknown prefixes are not looked up again and again."""
    from tenants.services import hash_api_key

    match = API_KEY_PATTERN.match(raw_key)
    if not match:
        return None
    prefix = match.group(1)
    api_key = memo_get(
        api_key_cache_key(prefix),
        lambda: ApiKey.objects.select_related("tenant").filter(prefix=prefix).first(),
    )
    if api_key is None or not hmac.compare_digest(api_key.hashed_key, hash_api_key(raw_key)):
        return None
    return api_key


def tenant_current() -> Tenant:
    """The tenant whose schema the connection is in. Requests and tasks set the real row;
    `schema_context` only a stand-in, so look it up then."""
    from tenants.connection import tenant_connection

    tenant = tenant_connection().tenant
    if isinstance(tenant, Tenant):
        return tenant
    return tenant_get_by_schema(schema_name=tenant.schema_name)


def tenant_get_by_schema(*, schema_name: str) -> Tenant:
    """The tenant of a schema, remembered like every tenant lookup (hub/memo.py): read before
    every task, and by `tenant_current` under `schema_context`."""
    found = _tenant_of_schema(schema_name)
    if found is None:
        raise Tenant.DoesNotExist(f"No tenant for schema {schema_name!r}")
    return found
