from rest_framework.routers import SimpleRouter

from knowledge.api.views import KnowledgeDocumentViewSet

router = SimpleRouter()
router.register("knowledge", KnowledgeDocumentViewSet, basename="knowledge-document")
urlpatterns = router.urls
