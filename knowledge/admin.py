from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from hub.admin_sites import tenant_admin_site
from knowledge import services
from knowledge.models import KnowledgeChunk, KnowledgeDocument


class KnowledgeChunkInline(admin.TabularInline):
    """The passages search finds and the qna handler cites; rewritten on save."""

    model = KnowledgeChunk
    extra = 0
    fields = ("position", "text", "embedded_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(KnowledgeDocument, site=tenant_admin_site)
class KnowledgeDocumentAdmin(admin.ModelAdmin):
    list_display = ("title", "enabled", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("title", "body")
    exclude = ("search_vector",)
    # A link typed without a scheme is a website: https (Django 6's default, chosen now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    inlines = [KnowledgeChunkInline]
    actions = ["reindex"]

    def save_model(
        self, request: HttpRequest, obj: KnowledgeDocument, form: Any, change: bool
    ) -> None:
        fields = {name: getattr(obj, name) for name in services.DOCUMENT_FIELDS}
        if change:
            current = KnowledgeDocument.objects.get(pk=obj.pk)
            services.knowledge_document_update(document=current, **fields)
        else:
            obj.pk = services.knowledge_document_create(**fields).pk
            obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: KnowledgeDocument) -> None:
        services.knowledge_document_delete(document=obj)

    @admin.action(description="Re-cut and re-embed the selected documents")
    def reindex(self, request: HttpRequest, queryset: QuerySet[KnowledgeDocument]) -> None:
        for document in queryset:
            services.knowledge_document_reindex(document=document)
        self.message_user(
            request, f"{queryset.count()} document(s) queued for indexing.", messages.SUCCESS
        )
