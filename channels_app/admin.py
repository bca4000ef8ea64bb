from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from channels_app.delivery import NotRetryable, message_retry
from channels_app.inbound import inbound_events_requeue
from channels_app.models import Channel, DeadLetter, InboundEvent
from hub.admin_sites import tenant_admin_site
from tenants.connection import tenant_connection


@admin.register(Channel, site=tenant_admin_site)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "agent", "enabled", "config_keys", "created_at")
    list_filter = ("kind", "enabled")
    list_select_related = ("agent",)
    search_fields = ("name",)
    autocomplete_fields = ("agent",)
    # Credentials are set through the API and never displayed: `config` is not a form field,
    # and only the names of its keys are shown, never a value (any of them may be a secret).
    fieldsets = (
        (None, {"fields": ("name", "kind", "agent", "enabled")}),
        (
            "Connection",
            {
                "fields": ("webhook_url", "channel_token", "config_keys"),
                "description": "Credentials are set through the API; their values are never "
                "shown here.",
            },
        ),
        (None, {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = ("webhook_url", "channel_token", "config_keys", "created_at", "updated_at")

    def get_readonly_fields(
        self, request: HttpRequest, obj: Channel | None = None
    ) -> tuple[str, ...]:
        # The kind is part of the webhook URL the provider was given; it cannot change later.
        return (*self.readonly_fields, "kind") if obj else tuple(self.readonly_fields)

    @admin.display(description="Credentials set")
    def config_keys(self, obj: Channel) -> str:
        return ", ".join(sorted(obj.config or {})) or "none"

    @admin.display(description="Webhook URL")
    def webhook_url(self, obj: Channel) -> str:
        if obj._state.adding:
            return "(shown once the channel is saved)"
        # The admin runs in the tenant's schema, whose name is the tenant's slug.
        return obj.webhook_url(tenant_slug=tenant_connection().schema_name)


@admin.register(InboundEvent, site=tenant_admin_site)
class InboundEventAdmin(admin.ModelAdmin):
    """The durable inbox: what providers sent, and whether it was processed."""

    list_display = ("received_at", "channel", "provider_event_id", "status", "attempts")
    list_filter = ("status", "channel")
    list_select_related = ("channel",)
    search_fields = ("provider_event_id",)
    # The raw body holds customers' messages: readable by the tenant's staff, never editable.
    readonly_fields = (
        "channel",
        "provider_event_id",
        "content_type",
        "status",
        "attempts",
        "error",
        "received_at",
        "processed_at",
        "body",
    )
    actions = ["reprocess"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Process the selected events again")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[InboundEvent]) -> None:
        queryset.filter(status=InboundEvent.Status.FAILED).update(
            status=InboundEvent.Status.RECEIVED, attempts=0
        )
        count = inbound_events_requeue(
            event_ids=list(
                queryset.filter(status=InboundEvent.Status.RECEIVED).values_list("pk", flat=True)
            )
        )
        self.message_user(request, f"{count} event(s) queued for processing.")


@admin.register(DeadLetter, site=tenant_admin_site)
class DeadLetterAdmin(admin.ModelAdmin):
    """Messages that ran out of delivery attempts: inspect the reason, requeue."""

    list_display = ("created_at", "message", "attempts", "error_code", "requeued_at")
    list_filter = ("error_code", "requeued_at")
    list_select_related = ("message",)
    readonly_fields = (
        "message",
        "attempts",
        "error_code",
        "error_message",
        "created_at",
        "requeued_at",
    )
    actions = ["requeue"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Requeue the selected messages")
    def requeue(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        requeued = 0
        for dead_letter in queryset.select_related("message"):
            try:
                message_retry(message=dead_letter.message)
            except NotRetryable:
                continue
            requeued += 1
        level = messages.SUCCESS if requeued else messages.WARNING
        self.message_user(request, f"{requeued} message(s) requeued for delivery.", level)
