"""API key authentication: the key decides the tenant, and the request runs in its schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from hub.exceptions import TenantSuspended
from tenants.connection import tenant_connection
from tenants.models import ApiKey, Tenant
from tenants.selectors import api_key_get_for_raw_key
from tenants.services import api_key_touch


@dataclass(frozen=True)
class ApiClient:
    """The caller behind an API key: what `request.user` is for the REST API."""

    api_key: ApiKey

    is_authenticated = True
    is_anonymous = False

    @property
    def tenant(self) -> Tenant:
        return self.api_key.tenant


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiClient, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw_key = header.partition(" ")
        raw_key = raw_key.strip()
        if scheme.lower() != self.keyword.lower() or not raw_key or " " in raw_key:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: expected 'Bearer <api_key>'."
            )
        api_key = api_key_get_for_raw_key(raw_key=raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Unknown API key.")
        if api_key.is_revoked:
            raise exceptions.AuthenticationFailed("This API key has been revoked.")
        tenant = api_key.tenant
        if not tenant.is_active:
            raise TenantSuspended()
        api_key_touch(api_key=api_key)
        tenant_connection().set_tenant(tenant)
        request._request.tenant = tenant  # type: ignore[attr-defined]
        return ApiClient(api_key=api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A tenant API key, `hub_<prefix>_<secret>`; it decides the tenant.",
        }
