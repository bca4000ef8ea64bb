"""The public URLconf: platform admin, REST API, docs, webhooks and operations."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from channels_app.views import provider_webhook
from hub.admin_sites import platform_admin_site
from hub.exceptions import api_not_found

handler404 = "hub.exceptions.page_not_found"
handler500 = "hub.exceptions.server_error"

api_urlpatterns = [
    path("api/v1/", include("hub.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # Last: any other /api/ path is a 404 in the error shape, DEBUG or not (Django's debug 404
    # page is HTML).
    re_path(r"^api/", api_not_found),
]

urlpatterns = [
    *api_urlpatterns,
    path("webchat/", include("webchat.urls")),
    path(
        "webhooks/<str:slug>/<str:kind>/<str:channel_token>/",
        provider_webhook,
        name="provider-webhook",
    ),
    path("admin/", platform_admin_site.urls),
]
