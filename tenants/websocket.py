"""Tenant resolution for WebSockets: Channels runs no Django middleware, so this puts the tenant
in `scope` (from `/t/<slug>/…` or the Host header) and refuses unknown or suspended tenants."""

from __future__ import annotations

import re
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from tenants.models import Tenant
from tenants.selectors import tenant_get_by_domain, tenant_get_by_slug

CLOSE_UNKNOWN_TENANT = 4404
CLOSE_TENANT_SUSPENDED = 4403


@database_sync_to_async
def _resolve(path: str, host: str) -> Tenant | None:
    match = re.match(rf"^/{re.escape(settings.HUB_TENANT_PREFIX)}/([^/]+)/", path)
    if match:
        return tenant_get_by_slug(slug=match.group(1))
    return tenant_get_by_domain(host=host)


class TenantWebsocketMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1").split(":")[0].lower()
        tenant = await _resolve(scope.get("path", ""), host)
        scope = dict(scope)
        scope["tenant_schema"] = tenant.schema_name if tenant else None
        scope["tenant_slug"] = tenant.schema_name if tenant else None
        scope["tenant_id"] = tenant.pk if tenant else None
        if tenant is not None and not tenant.is_active:
            return await _refuse(receive, send, CLOSE_TENANT_SUSPENDED)
        return await self.app(scope, receive, send)


class RequireTenant:
    """For routes that only make sense inside a tenant."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if not scope.get("tenant_schema"):
            return await _refuse(receive, send, CLOSE_UNKNOWN_TENANT)
        return await self.app(scope, receive, send)


async def _refuse(receive: Any, send: Any, code: int) -> None:
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": code})
