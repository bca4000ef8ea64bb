"""The tenant admin's view of outgoing webhooks: subscriptions (the secret can be replaced, never
shown), and deliveries with every attempt, redelivered or requeued from the dead letter."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from hub.admin_sites import tenant_admin_site
from hub.exceptions import ApplicationError
from webhooks import services
from webhooks.events import WEBHOOK_EVENTS
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from webhooks.security import UnsafeDestination, webhook_url_check
from webhooks.signing import SECRET_MIN_LENGTH


class WebhookSubscriptionForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=[(name, f"{name}: {help_text}") for name, help_text in WEBHOOK_EVENTS.items()],
        widget=forms.CheckboxSelectMultiple,
    )
    new_secret = forms.CharField(
        label="Signing secret",
        required=False,
        min_length=SECRET_MIN_LENGTH,
        max_length=255,
        strip=False,
        # Write-only: the stored secret is never rendered back into the page.
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only, never shown again. Required when adding; leave empty to keep "
        "the current one when changing.",
    )

    class Meta:
        model = WebhookSubscription
        fields = ["url", "events", "enabled", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A generated secret would be shown nowhere in the admin, so an operator sets one.
        self.fields["new_secret"].required = self.instance._state.adding

    def clean_url(self) -> str:
        url = str(self.cleaned_data["url"]).strip()
        if self.instance._state.adding or url != self.instance.url:
            try:
                webhook_url_check(url)
            except UnsafeDestination as error:
                raise forms.ValidationError(str(error)) from None
        return url


@admin.register(WebhookSubscription, site=tenant_admin_site)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    form = WebhookSubscriptionForm
    list_display = ("url", "event_list", "enabled", "description", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("url", "description")
    readonly_fields = ("id", "created_at", "updated_at")

    @admin.display(description="events")
    def event_list(self, subscription: WebhookSubscription) -> str:
        return ", ".join(subscription.events)

    def save_model(
        self,
        request: HttpRequest,
        obj: WebhookSubscription,
        form: forms.ModelForm,
        change: bool,
    ) -> None:
        fields: dict[str, Any] = {
            key: form.cleaned_data[key] for key in ("url", "events", "enabled", "description")
        }
        if form.cleaned_data.get("new_secret"):
            fields["secret"] = form.cleaned_data["new_secret"]
        if change:
            services.webhook_subscription_update(subscription=obj, **fields)
            return
        created = services.webhook_subscription_create(**fields)
        # The admin goes on with `obj` (its log entry, the redirect): make it the saved row.
        obj.pk, obj.secret = created.pk, created.secret
        obj.created_at, obj.updated_at = created.created_at, created.updated_at
        obj._state.adding = False


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = (
        "number",
        "attempted_at",
        "status_code",
        "duration_ms",
        "error",
        "response_snippet",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery, site=tenant_admin_site)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "event",
        "subscription",
        "status",
        "attempt_count",
        "last_status_code",
        "next_attempt_at",
    )
    list_filter = ("status", "event", "subscription")
    list_select_related = ("subscription",)
    date_hierarchy = "created_at"
    inlines = [WebhookAttemptInline]
    actions = ["redeliver_now", "requeue_dead"]
    fields = (
        "id",
        "subscription",
        "event",
        "event_id",
        "status",
        "attempt_count",
        "first_attempt_at",
        "last_attempt_at",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "payload_pretty",
    )
    readonly_fields = fields

    @admin.display(description="payload (data)")
    def payload_pretty(self, delivery: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(delivery.payload, indent=2))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A delivery's page is read-only; the list's actions still need the change permission.
        return obj is None and super().has_change_permission(request)

    @admin.action(description="Redeliver now", permissions=["change"])
    def redeliver_now(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        sent, refused = 0, 0
        for delivery in queryset.select_related("subscription"):
            try:
                services.webhook_delivery_redeliver(delivery=delivery)
                sent += 1
            except ApplicationError:
                refused += 1
        self.message_user(request, f"{sent} delivery(ies) queued to be sent now.")
        if refused:
            self.message_user(
                request,
                f"{refused} skipped: their webhook is disabled.",
                level=messages.WARNING,
            )

    @admin.action(description="Requeue dead deliveries", permissions=["change"])
    def requeue_dead(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        requeued = services.webhook_deliveries_requeue_dead(
            delivery_ids=queryset.values_list("pk", flat=True)
        )
        self.message_user(request, f"{requeued} dead delivery(ies) requeued with a fresh window.")
