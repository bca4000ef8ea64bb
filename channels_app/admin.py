from django.contrib import admin

from channels_app.models import Channel
from hub.admin_sites import tenant_admin_site


@admin.register(Channel, site=tenant_admin_site)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "agent", "enabled", "created_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    # Credentials are never displayed; they are set through the API.
    exclude = ("config",)
    readonly_fields = ("channel_token",)
