from django.urls import URLPattern, URLResolver, re_path
from rest_framework.routers import SimpleRouter

from hub.api import UUID_PATTERN
from webhooks.api.views import (
    WebhookDeliveryListView,
    WebhookDeliveryRedeliverView,
    WebhookViewSet,
)

router = SimpleRouter()
router.register("webhooks", WebhookViewSet, basename="webhook")

urlpatterns: list[URLPattern | URLResolver] = [
    re_path(
        rf"^webhooks/(?P<subscription_id>{UUID_PATTERN})/deliveries/$",
        WebhookDeliveryListView.as_view(),
        name="webhook-deliveries",
    ),
    re_path(
        rf"^webhooks/(?P<subscription_id>{UUID_PATTERN})/deliveries/"
        rf"(?P<delivery_id>{UUID_PATTERN})/redeliver/$",
        WebhookDeliveryRedeliverView.as_view(),
        name="webhook-delivery-redeliver",
    ),
    *router.urls,
]
