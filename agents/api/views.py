from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.serializers import BaseSerializer

from agents import selectors, services
from agents.api.serializers import AgentSerializer
from agents.models import Agent
from hub.api import UUID_PATTERN


@extend_schema_view(
    list=extend_schema(summary="List AI agents"),
    create=extend_schema(summary="Create an AI agent"),
    retrieve=extend_schema(summary="Get an AI agent"),
    partial_update=extend_schema(summary="Change an AI agent"),
    update=extend_schema(summary="Replace an AI agent"),
    destroy=extend_schema(summary="Delete an AI agent"),
)
class AgentViewSet(viewsets.ModelViewSet[Agent]):
    serializer_class = AgentSerializer
    lookup_value_regex = UUID_PATTERN
    ordering = "-created_at"

    def get_queryset(self) -> QuerySet[Agent]:
        return selectors.agent_list()

    def perform_create(self, serializer: BaseSerializer[Agent]) -> None:
        serializer.instance = services.agent_create(**serializer.validated_data)

    def perform_update(self, serializer: BaseSerializer[Agent]) -> None:
        assert serializer.instance is not None
        serializer.instance = services.agent_update(
            agent=serializer.instance, **serializer.validated_data
        )
