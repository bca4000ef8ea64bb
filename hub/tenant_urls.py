"""A tenant's pages: under `/t/<slug>/`, or at the root of the tenant's own domain."""

from django.urls import include, path

from hub.admin_sites import tenant_admin_site
from hub.urls import api_urlpatterns

handler404 = "hub.exceptions.page_not_found"
handler500 = "hub.exceptions.server_error"

urlpatterns = [
    *api_urlpatterns,
    path("admin/", tenant_admin_site.urls),
    path("", include("webchat.tenant_urls")),
    path("inbox/", include("inbox.urls")),
]
