from django.contrib import admin
from django.http import HttpRequest

from hub.admin_sites import tenant_admin_site
from jobs.models import JobRun


@admin.register(JobRun, site=tenant_admin_site)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ("job", "status", "slot", "started_at", "finished_at")
    list_filter = ("job", "status")
    readonly_fields = (
        "job",
        "status",
        "result",
        "error",
        "request_id",
        "slot",
        "started_at",
        "finished_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
