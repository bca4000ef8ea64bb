"""`/webchat/`: the visitor's HTTP side of the web chat (docs/webchat.md)."""

from django.urls import URLPattern, URLResolver, path

from webchat import views

urlpatterns: list[URLPattern | URLResolver] = [
    path("<str:slug>/files/<str:signed>/", views.visitor_file, name="webchat-file"),
    path(
        "<str:slug>/<str:channel_token>/config/",
        views.WebchatConfigView.as_view(),
        name="webchat-config",
    ),
    path(
        "<str:slug>/<str:channel_token>/session/",
        views.VisitorSessionView.as_view(),
        name="webchat-session",
    ),
    path(
        "<str:slug>/<str:channel_token>/attachments/",
        views.VisitorUploadView.as_view(),
        name="webchat-upload",
    ),
]
