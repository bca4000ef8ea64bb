from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django_celery_beat import admin as beat_admin
from django_celery_beat import models as beat_models

from hub.admin_sites import platform_admin_site
from tenants import services
from tenants.models import ApiKey, Domain, Tenant


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = (
        "name",
        "prefix",
        "rate_limit_per_minute",
        "can_manage_credits",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = ("prefix", "created_at", "last_used_at")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        # Keys are issued by the action so the raw key can be shown exactly once.
        return False


@admin.register(Tenant, site=platform_admin_site)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("schema_name", "name", "is_active", "suspended_at", "created_at")
    # Every setting is on the change form (no `fields` here); these show which tenants run what.
    list_filter = ("is_active", "extraction_enabled", "message_encryption")
    search_fields = ("schema_name", "name", "domains__domain")
    readonly_fields = ("suspended_at", "created_at")
    inlines = [DomainInline, ApiKeyInline]
    actions = ["suspend", "reactivate", "issue_api_key"]

    def has_delete_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        # Deleting drops a schema and everything in it: suspend here, delete with
        # `manage.py delete_tenant` on purpose.
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return super().get_queryset(request).filter(is_template=False)

    def get_readonly_fields(
        self, request: HttpRequest, obj: Tenant | None = None
    ) -> tuple[str, ...]:
        # The slug is the schema name: it cannot change once the schema exists.
        return (*self.readonly_fields, "schema_name") if obj else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Tenant, form: object, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        provisioned = services.tenant_provision(slug=obj.schema_name, name=obj.name)
        obj.pk = provisioned.tenant.pk
        self.message_user(
            request,
            f"Tenant created. Its API key, shown only now: {provisioned.api_key}",
            messages.WARNING,
        )

    @admin.action(description="Suspend the selected tenants")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            services.tenant_suspend(tenant=tenant)
        self.message_user(request, f"{queryset.count()} tenant(s) suspended.")

    @admin.action(description="Reactivate the selected tenants")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            services.tenant_reactivate(tenant=tenant)
        self.message_user(request, f"{queryset.count()} tenant(s) reactivated.")

    @admin.action(description="Issue a new API key (shown once)")
    def issue_api_key(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            issued = services.api_key_issue(tenant=tenant, name="admin-issued")
            self.message_user(
                request,
                f"{tenant.schema_name}: {issued.raw_key} (shown only now)",
                messages.WARNING,
            )


@admin.register(ApiKey, site=platform_admin_site)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("__str__", "tenant", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "name", "tenant__schema_name")
    readonly_fields = ("tenant", "prefix", "created_at", "last_used_at", "revoked_at")
    exclude = ("hashed_key",)
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            services.api_key_revoke(api_key=api_key)
        self.message_user(request, f"{queryset.count()} key(s) revoked.")


# Periodic jobs are edited in the platform admin; they run in the public schema and dispatch
# per tenant (jobs.tasks).
platform_admin_site.register(beat_models.PeriodicTask, beat_admin.PeriodicTaskAdmin)
platform_admin_site.register(beat_models.IntervalSchedule, beat_admin.IntervalScheduleAdmin)
platform_admin_site.register(beat_models.CrontabSchedule, beat_admin.CrontabScheduleAdmin)
platform_admin_site.register(beat_models.ClockedSchedule, beat_admin.ClockedScheduleAdmin)
