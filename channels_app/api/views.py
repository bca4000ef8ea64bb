"""`channels/`: CRUD. Thin: serializers check shapes, services validate and write."""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from channels_app import selectors, services
from channels_app.api.serializers import (
    ChannelCreateInputSerializer,
    ChannelOutputSerializer,
    ChannelUpdateInputSerializer,
)
from channels_app.models import Channel
from conversations.api.serializers import error_responses
from tenants.selectors import tenant_current


def _output(channel: Channel) -> dict[str, Any]:
    context = {"tenant_slug": tenant_current().schema_name}
    return dict(ChannelOutputSerializer(channel, context=context).data)


class ChannelListView(GenericAPIView[Channel]):
    serializer_class = ChannelOutputSerializer

    @extend_schema(
        summary="List channels",
        responses={200: ChannelOutputSerializer(many=True), **error_responses()},
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.channel_list())
        context = {"tenant_slug": tenant_current().schema_name}
        return self.get_paginated_response(
            ChannelOutputSerializer(page, many=True, context=context).data
        )

    @extend_schema(
        summary="Create a channel",
        request=ChannelCreateInputSerializer,
        responses={201: ChannelOutputSerializer, **error_responses(400)},
    )
    def post(self, request: Request) -> Response:
        serializer = ChannelCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel = services.channel_create(**serializer.validated_data)
        return Response(_output(channel), status=status.HTTP_201_CREATED)


class ChannelDetailView(GenericAPIView[Channel]):
    serializer_class = ChannelOutputSerializer

    @extend_schema(
        summary="Get a channel",
        responses={200: ChannelOutputSerializer, **error_responses(404)},
    )
    def get(self, request: Request, channel_id: uuid.UUID) -> Response:
        return Response(_output(selectors.channel_get(channel_id=channel_id)))

    @extend_schema(
        summary="Change a channel",
        description=(
            "Name, agent, enabled flag and config. `config` is merged into the stored one: "
            "secrets you leave out are kept, a key set to null is removed. The kind cannot change."
        ),
        request=ChannelUpdateInputSerializer,
        responses={200: ChannelOutputSerializer, **error_responses(400, 404)},
    )
    def patch(self, request: Request, channel_id: uuid.UUID) -> Response:
        channel = selectors.channel_get(channel_id=channel_id)
        serializer = ChannelUpdateInputSerializer(data=request.data, context={"channel": channel})
        serializer.is_valid(raise_exception=True)
        fields = {k: v for k, v in serializer.validated_data.items() if k != "kind"}
        return Response(_output(services.channel_update(channel=channel, **fields)))

    @extend_schema(
        summary="Delete a channel",
        description="Only a channel without conversations; otherwise 409 `channel_in_use`.",
        responses={204: None, **error_responses(404, 409)},
    )
    def delete(self, request: Request, channel_id: uuid.UUID) -> Response:
        services.channel_delete(channel=selectors.channel_get(channel_id=channel_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
