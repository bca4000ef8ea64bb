"""`/api/v1/`: every resource of the REST API (CONTRACT §4)."""

from django.urls import include, path

urlpatterns = [
    path("", include("agents.api.urls")),
    path("", include("billing.api.urls")),
]
