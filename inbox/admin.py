"""The tenant's console for the inbox: canned responses and operator notifications."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from hub.admin_sites import tenant_admin_site
from inbox.api.serializers import SHORTCUT_PATTERN
from inbox.models import CannedResponse, Notification
from inbox.services import (
    canned_response_create,
    canned_response_delete,
    canned_response_update,
    notification_mark_read,
)


class CannedResponseForm(forms.ModelForm):
    shortcut = forms.RegexField(
        regex=SHORTCUT_PATTERN,
        max_length=50,
        help_text="Typed after '/' in the composer: lowercase letters, digits, '-' and '_'.",
        error_messages={"invalid": "Use lowercase letters, digits, '-' and '_' only."},
    )

    class Meta:
        model = CannedResponse
        fields = ("shortcut", "text")
        widgets = {"text": forms.Textarea(attrs={"rows": 6})}
        help_texts = {
            "text": "{{contact.name}} and {{agent.name}} are filled in when it is inserted."
        }


@admin.register(CannedResponse, site=tenant_admin_site)
class CannedResponseAdmin(admin.ModelAdmin):
    form = CannedResponseForm
    list_display = ("shortcut_display", "text_preview", "updated_at")
    search_fields = ("shortcut", "text")

    @admin.display(description="Shortcut", ordering="shortcut")
    def shortcut_display(self, obj: CannedResponse) -> str:
        return f"/{obj.shortcut}"

    @admin.display(description="Text")
    def text_preview(self, obj: CannedResponse) -> str:
        return obj.text if len(obj.text) <= 90 else obj.text[:89] + "…"

    def save_model(
        self, request: HttpRequest, obj: CannedResponse, form: Any, change: bool
    ) -> None:
        # The form's unique check already ran; the services keep the race-free one.
        if change:
            canned_response_update(canned_response=obj, shortcut=obj.shortcut, text=obj.text)
        else:
            created = canned_response_create(shortcut=obj.shortcut, text=obj.text)
            # The admin logs and redirects with the form's instance: it takes the stored row.
            for field in obj._meta.concrete_fields:
                setattr(obj, field.attname, getattr(created, field.attname))
            obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: CannedResponse) -> None:
        canned_response_delete(canned_response=obj)


@admin.register(Notification, site=tenant_admin_site)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("title", "kind", "operator", "conversation", "created_at", "read_at")
    list_filter = ("kind", ("read_at", admin.EmptyFieldListFilter))
    list_select_related = ("operator", "conversation")
    search_fields = ("title", "body")
    readonly_fields = ("kind", "title", "body", "conversation", "operator", "read_at", "created_at")
    actions = ["mark_read"]

    # Notifications are raised by the hub itself (handoffs, credits, dead letters).
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Mark the selected notifications as read")
    def mark_read(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        unread = list(queryset.filter(read_at__isnull=True))
        for notification in unread:
            notification_mark_read(notification=notification)
        self.message_user(request, f"Marked {len(unread)} as read.", messages.SUCCESS)
