"""`extractions/`, `extraction-fields/` and `conversations/{id}/extract/` (CONTRACT §4).

Thin views: input serializers check shapes, selectors read, services write. Every lookup runs in
the API key's tenant schema, so another tenant's ids answer exactly as unknown ones do.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.http import HttpResponseBase, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.api.serializers import ApiErrorSerializer, EmptyInputSerializer
from extraction import exports, selectors, services
from extraction.api.serializers import (
    ExtractionFieldInputSerializer,
    ExtractionFieldOutputSerializer,
    ExtractionFilterSerializer,
    ExtractionOutputSerializer,
)
from extraction.models import Extraction, ExtractionField
from hub.pagination import CursorPagination

_ERRORS = {
    400: "Invalid input (`validation_error`, details name each field) or a refused operation.",
    401: "No, a malformed, unknown or revoked API key.",
    402: "`insufficient_credits`: an extraction costs `HUB_CREDITS_PER_EXTRACTION` credits.",
    404: "No such resource in this tenant (another tenant's ids are not found either).",
    409: "Conflicts with the current state (the `code` says which).",
    503: "`extraction_failed`: the extractor did not answer (`details.reason`); retried "
    "automatically with backoff.",
}


def _errors(*statuses: int) -> dict[int, OpenApiResponse]:
    return {
        code: OpenApiResponse(ApiErrorSerializer, description=_ERRORS[code])
        for code in sorted({401, *statuses})
    }


def _valid(serializer_class: type[Any], data: Any, **kwargs: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class JsonOnlyNegotiation(DefaultContentNegotiation):
    """`?format=` is this view's own parameter (csv and jsonl are streamed by the view), not
    DRF's renderer override; everything else the view answers is JSON."""

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class ExtractionCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")  # type: ignore[assignment]


class FieldCursorPagination(CursorPagination):
    ordering = ("position", "name")  # type: ignore[assignment]


class ExtractionListView(GenericAPIView[Extraction]):
    serializer_class = ExtractionOutputSerializer
    pagination_class = ExtractionCursorPagination
    content_negotiation_class = JsonOnlyNegotiation

    @extend_schema(
        operation_id="extractions_list",
        summary="List or export extracted leads",
        description="Every version of every conversation's lead, newest first. `format=csv` "
        "(one column per field of the schema) or `format=jsonl` (one object per line, in this "
        "list's shape) streams every matching version without pagination.",
        parameters=[ExtractionFilterSerializer],
        responses={
            200: ExtractionOutputSerializer(many=True),
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/x-ndjson"): OpenApiTypes.STR,
            **_errors(400),
        },
    )
    def get(self, request: Request) -> HttpResponseBase:
        filters = _valid(ExtractionFilterSerializer, request.query_params)
        extractions = selectors.extraction_list(
            created_after=filters.get("created_after"),
            created_before=filters.get("created_before"),
            channel_id=filters.get("channel"),
            conversation_id=filters.get("conversation"),
            field=filters.get("field") or None,
            q=filters.get("q") or None,
        )
        export = filters.get("format") or "json"
        if export != "json":
            return self._export(request, extractions, export)
        page = self.paginate_queryset(extractions)
        context = {"required_fields": selectors.extraction_required_field_names()}
        return self.get_paginated_response(
            ExtractionOutputSerializer(page, many=True, context=context).data
        )

    def _export(self, request: Request, extractions: Any, export: str) -> StreamingHttpResponse:
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        if export == "csv":
            names = list(selectors.extraction_field_list().values_list("name", flat=True))
            return exports.streaming_export(
                request=request._request,
                lines=exports.csv_lines(extractions, field_names=names),
                content_type="text/csv; charset=utf-8",
                filename=f"extractions-{stamp}.csv",
            )
        return exports.streaming_export(
            request=request._request,
            lines=exports.jsonl_lines(
                extractions, required_fields=selectors.extraction_required_field_names()
            ),
            content_type="application/x-ndjson; charset=utf-8",
            filename=f"extractions-{stamp}.jsonl",
        )


class ConversationExtractView(APIView):
    @extend_schema(
        summary="Extract a conversation's lead now",
        description="Runs one extraction at once and returns the new version (even without "
        "new messages, unlike the scheduled runs). Costs credits like a scheduled run. Errors: "
        "409 `nothing_to_extract` (no messages), `no_extraction_fields`, "
        "`extraction_in_progress`; 402 `insufficient_credits`; 503 `extraction_failed`.",
        request=EmptyInputSerializer,
        responses={201: ExtractionOutputSerializer, **_errors(400, 402, 404, 409, 503)},
    )
    def post(self, request: Request, conversation_id: uuid.UUID) -> Response:
        _valid(EmptyInputSerializer, request.data)
        extraction = services.extraction_run(
            conversation_id=conversation_id, trigger=Extraction.Trigger.MANUAL
        )
        assert extraction is not None  # a manual run returns its version or raises
        return Response(ExtractionOutputSerializer(extraction).data, status=status.HTTP_201_CREATED)


class ExtractionFieldListView(GenericAPIView[ExtractionField]):
    serializer_class = ExtractionFieldOutputSerializer
    pagination_class = FieldCursorPagination

    @extend_schema(
        summary="List the extraction schema's fields",
        responses={200: ExtractionFieldOutputSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.extraction_field_list())
        return self.get_paginated_response(ExtractionFieldOutputSerializer(page, many=True).data)

    @extend_schema(
        summary="Add a field to the extraction schema",
        description="`type`: string, email, phone, number, date, enum (with `enum_values`) or "
        "boolean. A taken name is 409 `field_exists`; at most 50 fields.",
        request=ExtractionFieldInputSerializer,
        responses={201: ExtractionFieldOutputSerializer, **_errors(400, 409)},
    )
    def post(self, request: Request) -> Response:
        data = _valid(ExtractionFieldInputSerializer, request.data)
        field = services.extraction_field_create(**data)
        return Response(ExtractionFieldOutputSerializer(field).data, status=status.HTTP_201_CREATED)


class ExtractionFieldDetailView(APIView):
    @extend_schema(
        summary="Get an extraction field",
        responses={200: ExtractionFieldOutputSerializer, **_errors(404)},
    )
    def get(self, request: Request, field_id: uuid.UUID) -> Response:
        field = selectors.extraction_field_get(field_id=field_id)
        return Response(ExtractionFieldOutputSerializer(field).data)

    @extend_schema(
        summary="Change an extraction field",
        description="Versions already extracted keep what they found under the old name.",
        request=ExtractionFieldInputSerializer(partial=True),
        responses={200: ExtractionFieldOutputSerializer, **_errors(400, 404, 409)},
    )
    def patch(self, request: Request, field_id: uuid.UUID) -> Response:
        field = selectors.extraction_field_get(field_id=field_id)
        data = _valid(ExtractionFieldInputSerializer, request.data, partial=True)
        field = services.extraction_field_update(field=field, **data)
        return Response(ExtractionFieldOutputSerializer(field).data)

    @extend_schema(
        summary="Remove a field from the extraction schema",
        description="Versions already extracted keep its values.",
        responses={204: None, **_errors(404)},
    )
    def delete(self, request: Request, field_id: uuid.UUID) -> Response:
        services.extraction_field_delete(field=selectors.extraction_field_get(field_id=field_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
