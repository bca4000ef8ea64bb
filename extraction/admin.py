from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone

from extraction import exports, selectors, services
from extraction.models import Extraction, ExtractionField
from hub.admin_sites import tenant_admin_site


@admin.register(ExtractionField, site=tenant_admin_site)
class ExtractionFieldAdmin(admin.ModelAdmin):
    """The tenant's extraction schema. The form validates as the API does (`clean()`); saving
    goes through the services, which also hold the 50-field limit."""

    list_display = ("name", "type", "required", "position", "description")
    list_editable = ("position",)
    list_filter = ("type", "required")
    search_fields = ("name", "description")
    fields = ("name", "type", "description", "required", "enum_values", "position")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and (
            selectors.extraction_field_list().count() < services.MAX_FIELDS
        )

    def save_model(
        self, request: HttpRequest, obj: ExtractionField, form: Any, change: bool
    ) -> None:
        values = {name: getattr(obj, name) for name in self.fields}
        if change:
            services.extraction_field_update(field=obj, **values)
        else:
            obj.pk = services.extraction_field_create(**values).pk


@admin.register(Extraction, site=tenant_admin_site)
class ExtractionAdmin(admin.ModelAdmin):
    """Extracted leads, every version; read-only, exported with the actions."""

    list_display = ("created_at", "conversation", "version", "source", "trigger", "found")
    list_filter = ("source", "trigger", "created_at", "conversation__channel")
    search_fields = ("=conversation__id", "contact__name", "contact__email")
    date_hierarchy = "created_at"
    list_select_related = ("conversation__contact", "conversation__channel")
    actions = ["export_csv", "export_jsonl"]
    readonly_fields = [field.name for field in Extraction._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="Found")
    def found(self, obj: Extraction) -> str:
        return ", ".join(f"{key}={value}" for key, value in obj.data.items())[:120]

    def _stamp(self) -> str:
        return timezone.now().strftime("%Y%m%d-%H%M%S")

    @admin.action(description="Export selected as CSV")
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[Extraction]
    ) -> StreamingHttpResponse:
        names = list(selectors.extraction_field_list().values_list("name", flat=True))
        rows = selectors.extraction_list().filter(pk__in=queryset.values("pk"))
        return exports.streaming_export(
            request=request,
            lines=exports.csv_lines(rows, field_names=names),
            content_type="text/csv; charset=utf-8",
            filename=f"extractions-{self._stamp()}.csv",
        )

    @admin.action(description="Export selected as JSON lines")
    def export_jsonl(
        self, request: HttpRequest, queryset: QuerySet[Extraction]
    ) -> StreamingHttpResponse:
        rows = selectors.extraction_list().filter(pk__in=queryset.values("pk"))
        return exports.streaming_export(
            request=request,
            lines=exports.jsonl_lines(
                rows, required_fields=selectors.extraction_required_field_names()
            ),
            content_type="application/x-ndjson; charset=utf-8",
            filename=f"extractions-{self._stamp()}.jsonl",
        )
