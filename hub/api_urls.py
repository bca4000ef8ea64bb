"""`/api/v1/`: every resource of the REST API (CONTRACT §4)."""

from django.urls import include, path

urlpatterns = [
    path("", include("agents.api.urls")),
    path("", include("billing.api.urls")),
    path("", include("channels_app.api.urls")),
    path("", include("conversations.api.urls")),
    path("", include("webhooks.api.urls")),
]
