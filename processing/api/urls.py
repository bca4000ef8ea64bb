from rest_framework.routers import SimpleRouter

from processing.api.views import IntentViewSet, RoutingDecisionViewSet, RoutingRuleViewSet

router = SimpleRouter()
router.register("routing-rules", RoutingRuleViewSet, basename="routing-rule")
router.register("intents", IntentViewSet, basename="intent")
router.register("routing-decisions", RoutingDecisionViewSet, basename="routing-decision")
urlpatterns = router.urls
