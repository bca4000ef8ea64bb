from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from automation import flows, services
from automation.models import AssessmentFlow, AssessmentRun, CsatRating, Reminder, Task
from hub.admin_sites import tenant_admin_site


class _ReadOnly(admin.ModelAdmin):
    """Records the handlers wrote: viewable, never written by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CsatRating, site=tenant_admin_site)
class CsatRatingAdmin(_ReadOnly):
    list_display = ("created_at", "score", "sentiment", "raw", "conversation")
    list_filter = ("sentiment", "score")
    date_hierarchy = "created_at"
    search_fields = ("=conversation__id",)
    list_select_related = ("conversation__contact", "conversation__channel")


@admin.register(Reminder, site=tenant_admin_site)
class ReminderAdmin(_ReadOnly):
    list_display = ("due_at", "status", "text", "conversation", "snoozed", "delivered_at")
    list_filter = ("status",)
    date_hierarchy = "due_at"
    search_fields = ("text", "=conversation__id")
    list_select_related = ("conversation__contact", "conversation__channel")
    actions = ["cancel"]

    @admin.action(description="Cancel the selected reminders")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Reminder]) -> None:
        cancelled = queryset.filter(status=Reminder.Status.SCHEDULED).update(
            status=Reminder.Status.CANCELLED, updated_at=timezone.now()
        )
        self.message_user(request, f"{cancelled} reminder(s) cancelled.")


@admin.register(Task, site=tenant_admin_site)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("title", "status", "priority", "assignee", "due_at", "created_at")
    list_filter = ("status", "priority", "assignee")
    search_fields = ("title", "description")
    date_hierarchy = "created_at"
    list_select_related = ("assignee",)
    raw_id_fields = ("conversation", "contact", "requested_by")
    readonly_fields = ("requested_by", "completed_at", "created_at", "updated_at")

    def save_model(self, request: HttpRequest, obj: Task, form: Any, change: bool) -> None:
        fields = {
            name: form.cleaned_data[name]
            for name in services.TASK_FIELDS
            if name in form.cleaned_data and (not change or name in form.changed_data)
        }
        if change:
            task = Task.objects.get(pk=obj.pk)
            services.task_update(task=task, **fields)
            return
        created = services.task_create(
            conversation=form.cleaned_data.get("conversation"),
            contact_id=getattr(form.cleaned_data.get("contact"), "pk", None),
            **fields,
        )
        obj.pk = created.pk
        obj._state.adding = False


class AssessmentFlowForm(forms.ModelForm):
    class Meta:
        model = AssessmentFlow
        fields = ["key", "name", "description", "trigger_keywords", "definition", "enabled"]

    def clean_definition(self) -> Any:
        definition = self.cleaned_data.get("definition")
        try:
            return flows.definition_validate(definition)
        except flows.DefinitionError as error:
            raise forms.ValidationError(
                [f"{path}: {message}" for path, message in error.errors.items()]
            ) from error


@admin.register(AssessmentFlow, site=tenant_admin_site)
class AssessmentFlowAdmin(admin.ModelAdmin):
    form = AssessmentFlowForm
    list_display = ("name", "key", "enabled", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("name", "key")

    def save_model(
        self, request: HttpRequest, obj: AssessmentFlow, form: Any, change: bool
    ) -> None:
        fields = {name: form.cleaned_data[name] for name in services.FLOW_FIELDS}
        if change:
            services.assessment_flow_update(flow=AssessmentFlow.objects.get(pk=obj.pk), **fields)
            return
        obj.pk = services.assessment_flow_create(**fields).pk
        obj._state.adding = False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A flow with runs keeps its results: disable it instead.
        if obj is not None and AssessmentRun.objects.filter(flow=obj).exists():
            return False
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AssessmentFlow]) -> None:
        for flow in queryset.exclude(runs__isnull=False):
            services.assessment_flow_delete(flow=flow)


@admin.register(AssessmentRun, site=tenant_admin_site)
class AssessmentRunAdmin(_ReadOnly):
    list_display = ("started_at", "flow", "status", "step", "score", "outcome", "conversation")
    list_filter = ("flow", "status", "outcome")
    date_hierarchy = "started_at"
    search_fields = ("=conversation__id",)
    list_select_related = ("flow", "conversation__contact", "conversation__channel")
