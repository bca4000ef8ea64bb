"""`/api/v1/webhooks/`: thin views over the webhooks services and selectors."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.api import UUID_PATTERN
from webhooks import selectors, services
from webhooks.api.serializers import (
    WebhookCreatedSerializer,
    WebhookCreateInputSerializer,
    WebhookDeliveryOutputSerializer,
    WebhookErrorSerializer,
    WebhookOutputSerializer,
    WebhookUpdateInputSerializer,
)
from webhooks.models import WebhookDelivery, WebhookSubscription

INVALID = OpenApiResponse(
    WebhookErrorSerializer,
    description="`validation_error`: `details` names each invalid or unknown field, e.g. a "
    "`url` that is not http(s), does not resolve, or resolves to a private address.",
)
NOT_FOUND = OpenApiResponse(
    WebhookErrorSerializer,
    description="`not_found`: no such webhook in this tenant (another tenant's id included).",
)


@extend_schema_view(
    list=extend_schema(summary="List webhook subscriptions"),
    create=extend_schema(
        summary="Subscribe a URL to events",
        description="The signing secret is generated when omitted, and returned in full only "
        "in this response.",
        request=WebhookCreateInputSerializer,
        responses={201: WebhookCreatedSerializer, 400: INVALID},
    ),
    retrieve=extend_schema(
        summary="Get a webhook subscription",
        responses={200: WebhookOutputSerializer, 404: NOT_FOUND},
    ),
    partial_update=extend_schema(
        summary="Change a webhook subscription",
        description="A new `secret` is accepted and never echoed.",
        request=WebhookUpdateInputSerializer,
        responses={200: WebhookOutputSerializer, 400: INVALID, 404: NOT_FOUND},
    ),
    destroy=extend_schema(
        summary="Delete a webhook subscription and its delivery history",
        responses={204: None, 404: NOT_FOUND},
    ),
)
class WebhookViewSet(viewsets.GenericViewSet[WebhookSubscription]):
    serializer_class = WebhookOutputSerializer
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self) -> QuerySet[WebhookSubscription]:
        return selectors.webhook_subscription_list()

    def get_object(self) -> WebhookSubscription:
        return selectors.webhook_subscription_get(subscription_id=self.kwargs["pk"])

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(WebhookOutputSerializer(page, many=True).data)

    def create(self, request: Request) -> Response:
        data = WebhookCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        subscription = services.webhook_subscription_create(**data.validated_data)
        return Response(WebhookCreatedSerializer(subscription).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(WebhookOutputSerializer(self.get_object()).data)

    def partial_update(self, request: Request, pk: str) -> Response:
        subscription = self.get_object()
        data = WebhookUpdateInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        subscription = services.webhook_subscription_update(
            subscription=subscription, **data.validated_data
        )
        return Response(WebhookOutputSerializer(subscription).data)

    def destroy(self, request: Request, pk: str) -> Response:
        services.webhook_subscription_delete(subscription=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveryListView(generics.ListAPIView[WebhookDelivery]):
    serializer_class = WebhookDeliveryOutputSerializer

    @extend_schema(
        summary="A webhook's deliveries, newest first",
        description="Each with its number of attempts and the last HTTP status received. "
        "`status`: `pending`, `succeeded`, `failed` (retrying) or `dead` (given up).",
        responses={200: WebhookDeliveryOutputSerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        subscription = selectors.webhook_subscription_get(
            subscription_id=self.kwargs["subscription_id"]
        )
        return selectors.webhook_delivery_list(subscription=subscription)


class WebhookDeliveryRedeliverView(APIView):
    @extend_schema(
        summary="Send a delivery again now",
        description="Whatever its status, with a fresh 24 h retry window. The receiver sees "
        "the same `X-Hub-Delivery` id.",
        request=None,
        responses={
            202: WebhookDeliveryOutputSerializer,
            404: NOT_FOUND,
            409: OpenApiResponse(
                WebhookErrorSerializer, description="`webhook_disabled`: enable it first."
            ),
        },
    )
    def post(self, request: Request, subscription_id: str, delivery_id: str) -> Response:
        subscription = selectors.webhook_subscription_get(subscription_id=subscription_id)
        delivery = selectors.webhook_delivery_get(
            subscription=subscription, delivery_id=delivery_id
        )
        delivery = services.webhook_delivery_redeliver(delivery=delivery)
        return Response(
            WebhookDeliveryOutputSerializer(delivery).data, status=status.HTTP_202_ACCEPTED
        )
