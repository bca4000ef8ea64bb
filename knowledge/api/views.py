"""`/api/v1/knowledge/`: the documents agents answer from (CONTRACT §4), and a search that shows
which passages a question finds (what the `qna` handler would cite)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from conversations.api.serializers import ApiErrorSerializer
from hub.api import UUID_PATTERN
from knowledge import selectors, services
from knowledge.api.serializers import (
    KnowledgeDocumentSerializer,
    KnowledgeListFilterSerializer,
    KnowledgeSearchInputSerializer,
    PassageListSerializer,
)
from knowledge.models import KnowledgeDocument

INVALID = OpenApiResponse(
    ApiErrorSerializer,
    description="`validation_error`: `details` names each invalid or unknown field.",
)
NOT_FOUND = OpenApiResponse(
    ApiErrorSerializer,
    description="`not_found`: no such document in this tenant (another tenant's id included).",
)


@extend_schema_view(
    list=extend_schema(
        summary="List knowledge documents", parameters=[KnowledgeListFilterSerializer]
    ),
    create=extend_schema(
        summary="Add a knowledge document",
        description="The body is cut into passages at once and embedded in the background "
        "(where vector search is available); until then it is found by full text.",
        responses={201: KnowledgeDocumentSerializer, 400: INVALID},
    ),
    retrieve=extend_schema(
        summary="Get a knowledge document",
        responses={200: KnowledgeDocumentSerializer, 404: NOT_FOUND},
    ),
    partial_update=extend_schema(
        summary="Change a knowledge document",
        description="A new title or body re-cuts the passages; unchanged passages keep their "
        "embeddings.",
        responses={200: KnowledgeDocumentSerializer, 400: INVALID, 404: NOT_FOUND},
    ),
    update=extend_schema(
        summary="Replace a knowledge document",
        responses={200: KnowledgeDocumentSerializer, 400: INVALID, 404: NOT_FOUND},
    ),
    destroy=extend_schema(
        summary="Delete a knowledge document", responses={204: None, 404: NOT_FOUND}
    ),
)
class KnowledgeDocumentViewSet(viewsets.GenericViewSet[KnowledgeDocument]):
    serializer_class = KnowledgeDocumentSerializer
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self) -> QuerySet[KnowledgeDocument]:
        filters = KnowledgeListFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.knowledge_document_list(**filters.validated_data)

    def get_object(self) -> KnowledgeDocument:
        return selectors.knowledge_document_get(document_id=self.kwargs["pk"])

    def _output(self, document: KnowledgeDocument, **kwargs: Any) -> Response:
        fresh = selectors.knowledge_document_get(document_id=document.pk)
        return Response(KnowledgeDocumentSerializer(fresh).data, **kwargs)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(KnowledgeDocumentSerializer(page, many=True).data)

    def create(self, request: Request) -> Response:
        data = KnowledgeDocumentSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        document = services.knowledge_document_create(**data.validated_data)
        return self._output(document, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(KnowledgeDocumentSerializer(self.get_object()).data)

    def _update(self, request: Request, *, partial: bool) -> Response:
        document = self.get_object()
        data = KnowledgeDocumentSerializer(document, data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        document = services.knowledge_document_update(document=document, **data.validated_data)
        return self._output(document)

    def update(self, request: Request, pk: str) -> Response:
        return self._update(request, partial=False)

    def partial_update(self, request: Request, pk: str) -> Response:
        return self._update(request, partial=True)

    def destroy(self, request: Request, pk: str) -> Response:
        services.knowledge_document_delete(document=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Search passages as the qna handler does",
        description="The passages a question finds, best first, with how each was found: "
        "`vector` (embedding similarity, where pgvector is available) or `full_text`.",
        parameters=[KnowledgeSearchInputSerializer],
        responses={200: PassageListSerializer, 400: INVALID},
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def search(self, request: Request) -> Response:
        data = KnowledgeSearchInputSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        matches = selectors.knowledge_passages_search(
            text=data.validated_data["q"], limit=data.validated_data["limit"]
        )
        return Response(PassageListSerializer({"results": matches}).data)
