"""`/api/v1/`: every resource of the REST API (CONTRACT §4)."""

from django.urls import include, path

from channels_app.api.delivery import MessageRetryView
from channels_app.api.inbound import ChannelInboundView

urlpatterns = [
    path("", include("agents.api.urls")),
    path("", include("automation.api.urls")),
    path("", include("billing.api.urls")),
    path("", include("channels_app.api.urls")),
    path("", include("conversations.api.urls")),
    path("", include("extraction.api.urls")),
    path("", include("inbox.api.urls")),
    path("", include("knowledge.api.urls")),
    path("", include("processing.api.urls")),
    path("", include("webhooks.api.urls")),
    path("messages/<str:message_id>/retry/", MessageRetryView.as_view(), name="message-retry"),
    path(
        "channels/<uuid:channel_id>/inbound/", ChannelInboundView.as_view(), name="channel-inbound"
    ),
]
