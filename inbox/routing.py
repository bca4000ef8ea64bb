"""WebSocket routes of this app, included by hub/asgi.py.

`/t/<slug>/ws/inbox/` and `/ws/inbox/` on a tenant's own domain get their tenant from the
tenant middleware; `/ws/inbox/?tenant=<slug>` names it where the host is the platform's own.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.urls import URLPattern, re_path

from inbox.consumers import InboxConsumer
from tenants.selectors import tenant_get_by_slug
from tenants.websocket import CLOSE_TENANT_SUSPENDED, CLOSE_UNKNOWN_TENANT, RequireTenant


class TenantFromQuery:
    """Resolves `?tenant=<slug>` when the path and host named none. A slug that contradicts the
    tenant the host resolved to is refused: one socket, one tenant."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        slug = (query.get("tenant") or [""])[0]
        if slug:
            if scope.get("tenant_schema") and scope["tenant_schema"] != slug:
                return await _refuse(receive, send, CLOSE_UNKNOWN_TENANT)
            if not scope.get("tenant_schema"):
                tenant = await database_sync_to_async(tenant_get_by_slug)(slug=slug)
                if tenant is None:
                    return await _refuse(receive, send, CLOSE_UNKNOWN_TENANT)
                if not tenant.is_active:
                    return await _refuse(receive, send, CLOSE_TENANT_SUSPENDED)
                scope = {
                    **scope,
                    "tenant_schema": tenant.schema_name,
                    "tenant_slug": tenant.schema_name,
                    "tenant_id": tenant.pk,
                }
        return await self.app(scope, receive, send)


async def _refuse(receive: Any, send: Any, code: int) -> None:
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": code})


inbox_socket = TenantFromQuery(RequireTenant(InboxConsumer.as_asgi()))

websocket_urlpatterns: list[URLPattern] = [
    re_path(r"^ws/inbox/$", inbox_socket),
    re_path(r"^t/[^/]+/ws/inbox/$", inbox_socket),
]
