"""One ASGI application for HTTP and WebSocket."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings.local")
django.setup(set_prefix=False)

from hub.asgi_http import PooledASGIHandler  # noqa: E402

http_app = PooledASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from hub.consumers import SocketHealthConsumer  # noqa: E402
from hub.heap import heap_freeze  # noqa: E402
from inbox.routing import websocket_urlpatterns as inbox_sockets  # noqa: E402
from tenants.websocket import RequireTenant, TenantWebsocketMiddleware  # noqa: E402
from webchat.routing import websocket_urlpatterns as webchat_sockets  # noqa: E402

websocket_urlpatterns = [
    re_path(r"^t/[^/]+/ws/health/$", RequireTenant(SocketHealthConsumer.as_asgi())),
    *webchat_sockets,
    *inbox_sockets,
]

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": TenantWebsocketMiddleware(URLRouter(websocket_urlpatterns)),
    }
)

heap_freeze()
