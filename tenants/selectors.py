"""Reads on tenants and API keys (public schema)."""

from __future__ import annotations

import hmac
import re

from hub.memo import memo_get
from tenants.models import ApiKey, Domain, Tenant

API_KEY_PATTERN = re.compile(r"^hub_([A-Za-z0-9]{8})_[A-Za-z0-9_-]{20,}$")


def tenant_get_by_slug(*, slug: str) -> Tenant | None:
    return memo_get(
        ("tenant-slug", slug),
        lambda: Tenant.objects.filter(schema_name=slug, is_template=False).first(),
    )


def tenant_get_by_domain(*, host: str) -> Tenant | None:
    def load() -> Tenant | None:
        domain = (
            Domain.objects.select_related("tenant")
            .filter(domain=host, tenant__is_template=False)
            .first()
        )
        return domain.tenant if domain else None

    return memo_get(("tenant-domain", host), load)


def tenant_list_active() -> list[Tenant]:
    return list(Tenant.objects.filter(is_active=True, is_template=False))


def api_key_get_for_raw_key(*, raw_key: str) -> ApiKey | None:
    """The key a caller presented, with its tenant, if it is well formed and known."""
    from tenants.services import hash_api_key

    match = API_KEY_PATTERN.match(raw_key)
    if not match:
        return None
    api_key = ApiKey.objects.select_related("tenant").filter(prefix=match.group(1)).first()
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
    found = memo_get(
        ("tenant-schema", tenant.schema_name),
        lambda: Tenant.objects.filter(schema_name=tenant.schema_name).first(),
    )
    if found is None:
        raise LookupError(f"No tenant for schema {tenant.schema_name!r}")
    return found
