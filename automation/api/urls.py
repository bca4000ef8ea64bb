from rest_framework.routers import SimpleRouter

from automation.api.views import AssessmentFlowViewSet, CsatRatingViewSet, TaskViewSet

router = SimpleRouter()
router.register("assessments", AssessmentFlowViewSet, basename="assessment")
router.register("tasks", TaskViewSet, basename="task")
router.register("csat", CsatRatingViewSet, basename="csat")
urlpatterns = router.urls
