from django.contrib import admin

from agents.models import Agent
from hub.admin_sites import tenant_admin_site


@admin.register(Agent, site=tenant_admin_site)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "model", "language", "updated_at")
    search_fields = ("name", "instructions")
