"""`assessments/` (flows, and the results of their runs), `tasks/` and `csat/` (read-only):
thin views over the automation services and selectors."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from automation import selectors, services
from automation.api.serializers import (
    AssessmentFlowSerializer,
    AssessmentRunSerializer,
    CsatFilterSerializer,
    CsatRatingSerializer,
    CsatSummarySerializer,
    TaskFilterSerializer,
    TaskSerializer,
    TaskUpdateSerializer,
)
from automation.models import AssessmentFlow, CsatRating, Task
from conversations.api.serializers import ApiErrorSerializer
from hub.api import UUID_PATTERN
from hub.pagination import CursorPagination

INVALID = OpenApiResponse(
    ApiErrorSerializer,
    description="`validation_error`: `details` names each invalid or unknown field (for a "
    "definition, by its path, e.g. `definition.questions[1].choices`).",
)
NOT_FOUND = OpenApiResponse(
    ApiErrorSerializer, description="`not_found`: no such resource in this tenant."
)


class StartedCursorPagination(CursorPagination):
    ordering = "-started_at"


def _valid(serializer_class: type[Any], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@extend_schema_view(
    list=extend_schema(summary="List assessment flows"),
    create=extend_schema(
        summary="Define an assessment flow",
        responses={201: AssessmentFlowSerializer, 400: INVALID},
    ),
    retrieve=extend_schema(
        summary="Get an assessment flow", responses={200: AssessmentFlowSerializer, 404: NOT_FOUND}
    ),
    partial_update=extend_schema(
        summary="Change an assessment flow",
        description="Runs in progress keep the definition they started with.",
        responses={200: AssessmentFlowSerializer, 400: INVALID, 404: NOT_FOUND},
    ),
    update=extend_schema(
        summary="Replace an assessment flow",
        responses={200: AssessmentFlowSerializer, 400: INVALID, 404: NOT_FOUND},
    ),
    destroy=extend_schema(
        summary="Delete an assessment flow nobody has run",
        responses={
            204: None,
            404: NOT_FOUND,
            409: OpenApiResponse(
                ApiErrorSerializer, description="`flow_in_use`: it has runs; disable it."
            ),
        },
    ),
)
class AssessmentFlowViewSet(viewsets.ModelViewSet[AssessmentFlow]):
    serializer_class = AssessmentFlowSerializer
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self) -> QuerySet[AssessmentFlow]:
        return selectors.assessment_flow_list()

    def get_object(self) -> AssessmentFlow:
        return selectors.assessment_flow_get(flow_id=self.kwargs["pk"])

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.assessment_flow_create(**serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.assessment_flow_update(
            flow=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: AssessmentFlow) -> None:
        services.assessment_flow_delete(flow=instance)

    @extend_schema(
        summary="The runs of a flow: answers, progress, score and outcome, newest first",
        responses={200: AssessmentRunSerializer(many=True), 404: NOT_FOUND},
    )
    @action(detail=True, methods=["get"], serializer_class=AssessmentRunSerializer)
    def results(self, request: Request, pk: str) -> Response:
        paginator = StartedCursorPagination()
        runs = selectors.assessment_run_list(flow=self.get_object())
        page = paginator.paginate_queryset(runs, request, view=self)
        return paginator.get_paginated_response(AssessmentRunSerializer(page, many=True).data)


@extend_schema_view(
    list=extend_schema(summary="List tasks", parameters=[TaskFilterSerializer]),
    create=extend_schema(
        summary="Create a task",
        description="The assignee, or else every operator, is notified.",
        responses={201: TaskSerializer, 400: INVALID},
    ),
    retrieve=extend_schema(summary="Get a task", responses={200: TaskSerializer, 404: NOT_FOUND}),
    partial_update=extend_schema(
        summary="Change a task (status, assignee, priority…)",
        description="A new assignee is notified; `done` or `cancelled` stamps `completed_at`.",
        request=TaskUpdateSerializer,
        responses={200: TaskSerializer, 400: INVALID, 404: NOT_FOUND},
    ),
    update=extend_schema(
        summary="Replace a task",
        request=TaskUpdateSerializer,
        responses={200: TaskSerializer, 400: INVALID, 404: NOT_FOUND},
    ),
    destroy=extend_schema(summary="Delete a task", responses={204: None, 404: NOT_FOUND}),
)
class TaskViewSet(viewsets.ModelViewSet[Task]):
    serializer_class = TaskSerializer
    lookup_value_regex = UUID_PATTERN

    def get_serializer_class(self) -> type[TaskSerializer]:
        return (
            TaskUpdateSerializer if self.action in ("update", "partial_update") else TaskSerializer
        )

    def get_queryset(self) -> QuerySet[Task]:
        if self.action != "list":
            return selectors.task_list()
        return selectors.task_list(**_valid(TaskFilterSerializer, self.request.query_params))

    def get_object(self) -> Task:
        return selectors.task_get(task_id=self.kwargs["pk"])

    def perform_create(self, serializer: Any) -> None:
        data = dict(serializer.validated_data)
        contact = data.pop("contact", None)
        serializer.instance = services.task_create(
            contact_id=contact.pk if contact else None, **data
        )

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.task_update(
            task=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: Task) -> None:
        services.task_delete(task=instance)


@extend_schema_view(
    list=extend_schema(summary="List CSAT ratings", parameters=[CsatFilterSerializer]),
    retrieve=extend_schema(
        summary="Get a CSAT rating", responses={200: CsatRatingSerializer, 404: NOT_FOUND}
    ),
)
class CsatRatingViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[CsatRating]
):
    """Ratings contacts gave (a score, stars, an emoji, or a reaction on an AI message)."""

    serializer_class = CsatRatingSerializer
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self) -> QuerySet[CsatRating]:
        if self.action != "list":
            return selectors.csat_list()
        return selectors.csat_list(**_valid(CsatFilterSerializer, self.request.query_params))

    def get_object(self) -> CsatRating:
        return selectors.csat_get(rating_id=self.kwargs["pk"])

    @extend_schema(
        summary="How satisfied contacts are: count, mean score, per sentiment",
        parameters=[CsatFilterSerializer],
        responses={200: CsatSummarySerializer, 400: INVALID},
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def summary(self, request: Request) -> Response:
        since = _valid(CsatFilterSerializer, request.query_params).get("since")
        return Response(
            CsatSummarySerializer(selectors.csat_summary(since=since)).data,
            status=status.HTTP_200_OK,
        )
