from django.urls import path

from extraction.api import views

urlpatterns = [
    path("extractions/", views.ExtractionListView.as_view(), name="extraction-list"),
    path(
        "extraction-fields/",
        views.ExtractionFieldListView.as_view(),
        name="extraction-field-list",
    ),
    path(
        "extraction-fields/<uuid:field_id>/",
        views.ExtractionFieldDetailView.as_view(),
        name="extraction-field-detail",
    ),
    path(
        "conversations/<uuid:conversation_id>/extract/",
        views.ConversationExtractView.as_view(),
        name="conversation-extract",
    ),
]
