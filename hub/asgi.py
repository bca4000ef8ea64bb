"""One ASGI application for HTTP and WebSocket."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings.local")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from hub.consumers import SocketHealthConsumer  # noqa: E402
from tenants.websocket import RequireTenant, TenantWebsocketMiddleware  # noqa: E402

websocket_urlpatterns = [
    re_path(r"^t/[^/]+/ws/health/$", RequireTenant(SocketHealthConsumer.as_asgi())),
]

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": TenantWebsocketMiddleware(URLRouter(websocket_urlpatterns)),
    }
)
