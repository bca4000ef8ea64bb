"""Routes each request to a tenant: `/t/<slug>/…`, else the tenant's own domain, else public."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from importlib import import_module
from types import ModuleType

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.response import SimpleTemplateResponse
from django.urls import include, path

from tenants.connection import tenant_connection
from tenants.selectors import tenant_get_by_domain, tenant_get_by_slug

# Answered without touching the database (probes never get this far).
UNROUTED_PREFIXES = ("/static/",)


@functools.lru_cache(maxsize=4096)
def tenant_subfolder_urlconf(slug: str) -> ModuleType:
    """The tenant URLconf under `/t/<slug>/`; one module per slug so Django caches its resolver."""
    root = import_module(settings.ROOT_URLCONF)
    module = ModuleType(f"{settings.ROOT_URLCONF}__{slug}")
    module.urlpatterns = [  # type: ignore[attr-defined]
        path(f"{settings.HUB_TENANT_PREFIX}/{slug}/", include(root.urlpatterns))
    ]
    for handler in ("handler400", "handler403", "handler404", "handler500"):
        if hasattr(root, handler):
            setattr(module, handler, getattr(root, handler))
    return module


def _refusal(request: HttpRequest, *, status: int, title: str, message: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        from hub.exceptions import json_error_response

        code = "tenant_suspended" if status == 403 else "not_found"
        return json_error_response(code, message, status)
    response = SimpleTemplateResponse(
        "hub/refusal.html", {"title": title, "message": message}, status=status
    )
    return response.render()


class TenantRoutingMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.prefix = re.compile(rf"^/{re.escape(settings.HUB_TENANT_PREFIX)}/([^/]+)/")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant_connection().set_schema_to_public()
        # django-tenants' templates expect a tenant with a schema on every request.
        request.tenant = tenant_connection().tenant  # type: ignore[attr-defined]
        if request.path_info.startswith(UNROUTED_PREFIXES):
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
            return self.get_response(request)
        match = self.prefix.match(request.path_info)
        if match:
            tenant = tenant_get_by_slug(slug=match.group(1))
            if tenant is None:
                return _refusal(
                    request, status=404, title="Not found", message="There is no such workspace."
                )
            urlconf: str | ModuleType = tenant_subfolder_urlconf(tenant.schema_name)
        else:
            tenant = tenant_get_by_domain(host=request.get_host().split(":")[0].lower())
            urlconf = settings.ROOT_URLCONF if tenant else settings.PUBLIC_SCHEMA_URLCONF
        if tenant is not None:
            if not tenant.is_active:
                return _refusal(
                    request,
                    status=403,
                    title="Workspace suspended",
                    message="This workspace is suspended. Contact the platform operator.",
                )
            request.tenant = tenant  # type: ignore[attr-defined]
            tenant_connection().set_tenant(tenant)
        setattr(request, "urlconf", urlconf)  # noqa: B010 - typed as str, a module is valid too
        return self.get_response(request)
