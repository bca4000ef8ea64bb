from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from billing import selectors
from billing.models import CreditBalance, CreditLedgerEntry
from hub.admin_sites import tenant_admin_site

USAGE_DAYS = (7, 30, 90)


@admin.register(CreditBalance, site=tenant_admin_site)
class CreditBalanceAdmin(admin.ModelAdmin):
    list_display = ("balance", "low_alerted_at", "updated_at")
    readonly_fields = ("balance", "low_alerted_at", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(CreditLedgerEntry, site=tenant_admin_site)
class CreditLedgerEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "amount", "balance_after", "reason", "message")
    search_fields = ("reason",)
    date_hierarchy = "created_at"
    readonly_fields = (
        "amount",
        "balance_after",
        "reason",
        "message",
        "idempotency_key",
        "created_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        usage = path(
            "usage/",
            self.admin_site.admin_view(self.usage_view),
            name="billing_creditledgerentry_usage",
        )
        return [usage, *super().get_urls()]

    def usage_view(self, request: HttpRequest) -> TemplateResponse:
        """AI replies and credits per day and channel, and the ledger per day."""
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        try:
            days = int(request.GET.get("days", 30))
        except ValueError:
            days = 30
        days = days if days in USAGE_DAYS else 30
        usage = selectors.credit_usage_by_day_and_channel(days=days)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Credit usage, last {days} days",
            "days": days,
            "day_choices": USAGE_DAYS,
            "usage": usage,
            "usage_totals": {
                "replies": sum(row.replies for row in usage),
                "tokens": sum(row.tokens for row in usage),
                "credits": sum(row.credits for row in usage),
                "pending": sum(row.pending for row in usage),
                "unpaid": sum(row.unpaid for row in usage),
            },
            "ledger": selectors.credit_ledger_by_day(days=days),
            "balance": selectors.credit_balance_get(),
        }
        return TemplateResponse(request, "admin/billing/usage_report.html", context)
