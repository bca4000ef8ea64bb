from django.urls import path

from channels_app.api.views import ChannelDetailView, ChannelListView

urlpatterns = [
    path("channels/", ChannelListView.as_view(), name="channel-list"),
    path("channels/<uuid:channel_id>/", ChannelDetailView.as_view(), name="channel-detail"),
]
