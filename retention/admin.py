from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from hub.admin_sites import tenant_admin_site
from retention import services
from retention.models import HeldConversation, RetentionRun


@admin.register(RetentionRun, site=tenant_admin_site)
class RetentionRunAdmin(admin.ModelAdmin):
    """The audit trail: read-only, kept for as long as the tenant exists."""

    list_display = ("started_at", "kind", "subject", "retention_days", "counts")
    list_filter = ("kind",)
    search_fields = ("=subject",)
    date_hierarchy = "started_at"
    readonly_fields = (
        "kind",
        "subject",
        "retention_days",
        "cutoff",
        "counts",
        "started_at",
        "finished_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(HeldConversation, site=tenant_admin_site)
class HeldConversationAdmin(admin.ModelAdmin):
    """Where legal holds are placed and lifted: retention skips a held conversation and its
    contact cannot be erased."""

    list_display = ("__str__", "status", "legal_hold", "last_activity_at", "created_at")
    list_filter = ("legal_hold", "status", "channel")
    search_fields = ("contact__name", "contact__email", "contact__phone")
    list_select_related = ("contact", "channel")
    actions = ["place_hold", "lift_hold"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Changed only through the two actions; the list itself is read-only.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_hold_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("conversations.change_conversation")

    @admin.action(description="Place under legal hold", permissions=["hold"])
    def place_hold(self, request: HttpRequest, queryset: QuerySet[HeldConversation]) -> None:
        changed = services.conversations_legal_hold_set(
            conversation_ids=list(queryset.values_list("pk", flat=True)), hold=True
        )
        self.message_user(request, f"{changed} conversation(s) placed under legal hold.")

    @admin.action(description="Lift the legal hold", permissions=["hold"])
    def lift_hold(self, request: HttpRequest, queryset: QuerySet[HeldConversation]) -> None:
        changed = services.conversations_legal_hold_set(
            conversation_ids=list(queryset.values_list("pk", flat=True)), hold=False
        )
        self.message_user(request, f"{changed} legal hold(s) lifted.")
