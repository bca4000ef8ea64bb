from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from agents.models import Agent, LlmCall
from hub.admin_sites import tenant_admin_site


@admin.register(Agent, site=tenant_admin_site)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "model", "api_mode", "language", "updated_at")
    list_filter = ("api_mode",)
    search_fields = ("name", "instructions")


@admin.register(LlmCall, site=tenant_admin_site)
class LlmCallAdmin(admin.ModelAdmin):
    """A record of spend and failures: viewable, never written by hand."""

    list_display = (
        "created_at",
        "purpose",
        "agent",
        "model",
        "outcome",
        "error_code",
        "total_tokens",
        "latency_ms",
        "attempts",
    )
    list_filter = ("purpose", "outcome", "api_mode", "model")
    search_fields = ("=conversation_id", "=response_id")
    date_hierarchy = "created_at"
    list_select_related = ("agent",)
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
