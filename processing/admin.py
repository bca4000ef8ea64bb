"""Routing in the tenant admin: the intent catalogue and the rules (edited, with the same
validation as the API), and every decision taken (read only, for analytics)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from hub.admin_sites import tenant_admin_site
from processing import routing
from processing.models import Intent, RoutingDecision, RoutingRule


class IntentForm(forms.ModelForm):
    class Meta:
        model = Intent
        fields = ("name", "description", "examples", "keywords")

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"]
        if self.instance.pk:
            old = Intent.objects.filter(pk=self.instance.pk).values_list("name", flat=True).first()
            if old and old != name and (rules := routing.rules_naming(old)):
                raise forms.ValidationError(
                    f"Routing rules name this intent ({', '.join(rules)}); change them first."
                )
        return name


@admin.register(Intent, site=tenant_admin_site)
class IntentAdmin(admin.ModelAdmin):
    form = IntentForm
    list_display = ("name", "description", "updated_at")
    search_fields = ("name", "description")

    def has_delete_permission(self, request: HttpRequest, obj: Intent | None = None) -> bool:
        # Rules name intents by name: one in use cannot go (the bulk action is off for the same
        # reason).
        if obj is not None and routing.rules_naming(obj.name):
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


@admin.register(RoutingRule, site=tenant_admin_site)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "priority", "enabled", "handler", "business_hours", "updated_at")
    list_editable = ("priority", "enabled")
    list_filter = ("enabled", "handler", "business_hours")
    search_fields = ("name", "pattern")
    ordering = ("priority", "created_at")
    fieldsets = (
        (None, {"fields": ("name", "priority", "enabled", "handler")}),
        (
            "Conditions (all of those set must hold; leave empty for any)",
            {
                "fields": (
                    "channels",
                    "channel_kinds",
                    "intents",
                    "min_confidence",
                    "keywords",
                    "pattern",
                    "contact_attributes",
                    "business_hours",
                    "languages",
                )
            },
        ),
    )


@admin.register(RoutingDecision, site=tenant_admin_site)
class RoutingDecisionAdmin(admin.ModelAdmin):
    """What routing decided for each message: viewable and filterable, never written by hand."""

    list_display = (
        "created_at",
        "handler",
        "reason",
        "rule_name",
        "intent",
        "confidence",
        "sentiment",
        "intent_source",
        "tokens",
    )
    list_filter = ("handler", "reason", "intent_source", "sentiment", "intent")
    search_fields = ("=conversation__id", "rule_name", "intent")
    date_hierarchy = "created_at"
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[RoutingDecision]:
        return super().get_queryset(request).select_related("rule")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
