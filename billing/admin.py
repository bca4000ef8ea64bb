from django.contrib import admin
from django.http import HttpRequest

from billing.models import CreditBalance, CreditLedgerEntry
from hub.admin_sites import tenant_admin_site


@admin.register(CreditBalance, site=tenant_admin_site)
class CreditBalanceAdmin(admin.ModelAdmin):
    list_display = ("balance", "updated_at")
    readonly_fields = ("balance", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(CreditLedgerEntry, site=tenant_admin_site)
class CreditLedgerEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "amount", "balance_after", "reason", "message")
    search_fields = ("reason",)
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
