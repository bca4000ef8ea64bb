"""WebSocket routes of this app, included by hub/asgi.py."""

from django.urls import URLPattern, re_path

from webchat.consumers import VisitorConsumer

websocket_urlpatterns: list[URLPattern] = [
    re_path(r"^ws/webchat/$", VisitorConsumer.as_asgi()),
]
