"""Two consoles: the platform admin at `/admin/` (public schema) and each tenant's admin at
`/t/<slug>/admin/` (its own schema and its own operators)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.http import HttpRequest


class PlatformAdminSite(admin.AdminSite):
    site_header = "Hub platform"
    site_title = "Hub platform"
    index_title = "Tenants and platform settings"


class TenantAdminSite(admin.AdminSite):
    site_header = "Hub"
    site_title = "Hub"

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            context["site_header"] = f"Hub · {tenant.name}"
        return context


platform_admin_site = PlatformAdminSite(name="platform_admin")
tenant_admin_site = TenantAdminSite(name="tenant_admin")

for _site in (platform_admin_site, tenant_admin_site):
    _site.register(User, UserAdmin)
    _site.register(Group, GroupAdmin)
