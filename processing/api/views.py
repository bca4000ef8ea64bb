"""`routing-rules/`, `intents/` and `routing-decisions/`: thin views over processing.routing."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from conversations.api.serializers import ApiErrorSerializer
from hub.api import UUID_PATTERN
from hub.pagination import CursorPagination
from processing import routing
from processing.api.serializers import (
    IntentSerializer,
    RoutingDecisionFilterSerializer,
    RoutingDecisionSerializer,
    RoutingRuleSerializer,
)
from processing.models import Intent, RoutingDecision, RoutingRule

INVALID = OpenApiResponse(
    ApiErrorSerializer,
    description="`validation_error`: `details` names each invalid or unknown field (an invalid "
    "or unsafe `pattern`, an unknown `handler`, channel or intent…).",
)
NOT_FOUND = OpenApiResponse(
    ApiErrorSerializer,
    description="`not_found`: no such item in this tenant (another tenant's id included).",
)
INTENT_CONFLICT = OpenApiResponse(
    ApiErrorSerializer,
    description="`intent_exists`: the name is taken; `intent_in_use`: routing rules name the "
    "intent (`details.rules`), so it cannot be renamed or deleted.",
)


class RulePagination(CursorPagination):
    """In the order rules are tried."""

    def get_ordering(self, *args: Any) -> tuple[str, ...]:
        return ("priority", "created_at")


class NamePagination(CursorPagination):
    def get_ordering(self, *args: Any) -> tuple[str, ...]:
        return ("name",)


@extend_schema_view(
    list=extend_schema(summary="List routing rules, in the order they are tried"),
    create=extend_schema(
        summary="Create a routing rule",
        description="Rules are tried by `priority` (lowest first); the first whose every "
        "condition holds names the handler. An empty condition holds for any message.",
        responses={201: RoutingRuleSerializer, 400: INVALID},
    ),
    retrieve=extend_schema(
        summary="Get a routing rule", responses={200: RoutingRuleSerializer, 404: NOT_FOUND}
    ),
    partial_update=extend_schema(
        summary="Change a routing rule",
        responses={200: RoutingRuleSerializer, 400: INVALID, 404: NOT_FOUND},
    ),
    update=extend_schema(
        summary="Replace a routing rule",
        responses={200: RoutingRuleSerializer, 400: INVALID, 404: NOT_FOUND},
    ),
    destroy=extend_schema(
        summary="Delete a routing rule (past decisions keep its name)",
        responses={204: None, 404: NOT_FOUND},
    ),
)
class RoutingRuleViewSet(viewsets.ModelViewSet[RoutingRule]):
    serializer_class = RoutingRuleSerializer
    pagination_class = RulePagination
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self) -> QuerySet[RoutingRule]:
        return routing.routing_rule_list()

    def get_object(self) -> RoutingRule:
        return routing.routing_rule_get(rule_id=self.kwargs["pk"])

    def perform_create(self, serializer: BaseSerializer[RoutingRule]) -> None:
        serializer.instance = routing.routing_rule_create(**serializer.validated_data)

    def perform_update(self, serializer: BaseSerializer[RoutingRule]) -> None:
        assert serializer.instance is not None
        serializer.instance = routing.routing_rule_update(
            rule=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: RoutingRule) -> None:
        routing.routing_rule_delete(rule=instance)


@extend_schema_view(
    list=extend_schema(summary="List the intent catalogue"),
    create=extend_schema(
        summary="Add an intent to the catalogue",
        description="The catalogue (names, descriptions, examples) is sent with every intent "
        "call; `keywords` find the intent when no LLM is configured.",
        responses={201: IntentSerializer, 400: INVALID, 409: INTENT_CONFLICT},
    ),
    retrieve=extend_schema(
        summary="Get an intent", responses={200: IntentSerializer, 404: NOT_FOUND}
    ),
    partial_update=extend_schema(
        summary="Change an intent",
        responses={200: IntentSerializer, 400: INVALID, 404: NOT_FOUND, 409: INTENT_CONFLICT},
    ),
    update=extend_schema(
        summary="Replace an intent",
        responses={200: IntentSerializer, 400: INVALID, 404: NOT_FOUND, 409: INTENT_CONFLICT},
    ),
    destroy=extend_schema(
        summary="Delete an intent",
        responses={204: None, 404: NOT_FOUND, 409: INTENT_CONFLICT},
    ),
)
class IntentViewSet(viewsets.ModelViewSet[Intent]):
    serializer_class = IntentSerializer
    pagination_class = NamePagination
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self) -> QuerySet[Intent]:
        return routing.intent_list()

    def get_object(self) -> Intent:
        return routing.intent_get(intent_id=self.kwargs["pk"])

    def perform_create(self, serializer: BaseSerializer[Intent]) -> None:
        serializer.instance = routing.intent_create(**serializer.validated_data)

    def perform_update(self, serializer: BaseSerializer[Intent]) -> None:
        assert serializer.instance is not None
        serializer.instance = routing.intent_update(
            intent=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: Intent) -> None:
        routing.intent_delete(intent=instance)


class RoutingDecisionViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[RoutingDecision]):
    serializer_class = RoutingDecisionSerializer

    @extend_schema(
        summary="List routing decisions, newest first",
        description="One per routed inbound message: the rule, intent, confidence, sentiment "
        "and handler, and why (`reason`).",
        parameters=[
            OpenApiParameter("conversation", str, description="A conversation id."),
            OpenApiParameter("rule", str, description="A routing rule id."),
            OpenApiParameter("handler", str),
            OpenApiParameter("intent", str),
            OpenApiParameter("reason", str, enum=RoutingDecision.Reason.values),
        ],
        responses={200: RoutingDecisionSerializer(many=True), 400: INVALID},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[RoutingDecision]:
        filters = RoutingDecisionFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        return routing.routing_decision_list(
            conversation_id=data.get("conversation"),
            rule_id=data.get("rule"),
            handler=data.get("handler"),
            intent=data.get("intent"),
            reason=data.get("reason"),
        )
