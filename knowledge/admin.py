from django.contrib import admin

from hub.admin_sites import tenant_admin_site
from knowledge.models import KnowledgeDocument


@admin.register(KnowledgeDocument, site=tenant_admin_site)
class KnowledgeDocumentAdmin(admin.ModelAdmin):
    list_display = ("title", "enabled", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("title", "body")
    exclude = ("search_vector",)
