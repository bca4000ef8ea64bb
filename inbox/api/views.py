"""`/api/v1/canned-responses/`: the saved replies operators insert with `/shortcut`."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from conversations.api.serializers import error_responses
from hub.api import UUID_PATTERN
from inbox import selectors, services
from inbox.api.serializers import CannedResponseInputSerializer, CannedResponseOutputSerializer
from inbox.models import CannedResponse


@extend_schema_view(
    list=extend_schema(
        summary="List canned responses",
        description="Ordered by shortcut.",
        responses={200: CannedResponseOutputSerializer(many=True), **error_responses()},
    ),
    create=extend_schema(
        summary="Create a canned response",
        description="A shortcut already taken is 409 `duplicate_shortcut`.",
        request=CannedResponseInputSerializer,
        responses={201: CannedResponseOutputSerializer, **error_responses(400, 409)},
    ),
    retrieve=extend_schema(
        summary="Get a canned response",
        responses={200: CannedResponseOutputSerializer, **error_responses(404)},
    ),
    partial_update=extend_schema(
        summary="Change a canned response",
        request=CannedResponseInputSerializer(partial=True),
        responses={200: CannedResponseOutputSerializer, **error_responses(400, 404, 409)},
    ),
    destroy=extend_schema(
        summary="Delete a canned response", responses={204: None, **error_responses(404)}
    ),
)
class CannedResponseViewSet(viewsets.GenericViewSet[CannedResponse]):
    serializer_class = CannedResponseOutputSerializer
    lookup_value_regex = UUID_PATTERN
    ordering = "shortcut"

    def get_queryset(self) -> QuerySet[CannedResponse]:
        return selectors.canned_response_list()

    def get_object(self) -> CannedResponse:
        return selectors.canned_response_get(canned_response_id=self.kwargs["pk"])

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(CannedResponseOutputSerializer(page, many=True).data)

    def create(self, request: Request) -> Response:
        data = CannedResponseInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        canned = services.canned_response_create(**data.validated_data)
        return Response(CannedResponseOutputSerializer(canned).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(CannedResponseOutputSerializer(self.get_object()).data)

    def partial_update(self, request: Request, pk: str) -> Response:
        canned = self.get_object()
        data = CannedResponseInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        canned = services.canned_response_update(canned_response=canned, **data.validated_data)
        return Response(CannedResponseOutputSerializer(canned).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.canned_response_delete(canned_response=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
