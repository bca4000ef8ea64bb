"""WebSocket routes of this app, included by hub/asgi.py."""

from django.urls import URLPattern

websocket_urlpatterns: list[URLPattern] = []
