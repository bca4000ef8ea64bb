"""`POST channels/{id}/inbound/`: the API channel, where an integrator's own system posts what
its users say. The AI agent's and operators' replies reach it through outgoing webhooks
(`message.created` with `direction: out`)."""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app import inbound, selectors
from conversations.api.serializers import MessageOutputSerializer, error_responses
from conversations.selectors import message_get_in_conversation
from hub.api import StrictSerializerMixin


class ApiContactInputSerializer(serializers.Serializer[Any]):
    external_id = serializers.CharField(
        max_length=255,
        help_text="Your id for the person writing: the contact's `api` identity. The same id "
        "is the same contact (and conversation) on every message.",
    )
    name = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        help_text="Taken when the contact is first seen.",
    )

    def to_internal_value(self, data: Any) -> Any:
        # Nested, so StrictSerializerMixin (which reads the top level's initial_data) cannot see
        # these keys: unknown ones are refused here, under `contact`.
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class ApiInboundInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    contact = ApiContactInputSerializer()
    content = serializers.JSONField(
        help_text='Canonical content, e.g. {"type": "text", "text": "hi"}; media by `url`.'
    )
    external_message_id = serializers.CharField(
        max_length=255,
        help_text="Your id for this message, unique within the channel: a repeat returns the "
        "first message (200) and is processed once.",
    )


class ChannelInboundView(APIView):
    @extend_schema(
        summary="Receive a message on an API channel",
        description="The message of one of your users, as if they had written on a messaging "
        "channel: the contact is found by `contact.external_id` (created on first sight), "
        "its conversation on this channel is opened, and the AI agent (or an operator) "
        "answers. Replies are not in this response: subscribe to `message.created` with "
        "`webhooks/` and pick the messages with `direction: out` of the `conversation` this "
        "response names. The channel must be of kind `api` (else 400 `not_an_api_channel`) "
        "and enabled (else 409 `channel_disabled`).",
        request=ApiInboundInputSerializer,
        responses={
            201: MessageOutputSerializer,
            200: OpenApiResponse(
                MessageOutputSerializer,
                description="A repeated external_message_id: the first message, unchanged.",
            ),
            **error_responses(400, 404, 409),
        },
        examples=[
            OpenApiExample(
                "A text message",
                request_only=True,
                value={
                    "contact": {"external_id": "user-42", "name": "Ada"},
                    "content": {"type": "text", "text": "When do you open?"},
                    "external_message_id": "msg-1001",
                },
            )
        ],
    )
    def post(self, request: Request, channel_id: uuid.UUID) -> Response:
        channel = selectors.channel_get(channel_id=channel_id)
        serializer = ApiInboundInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        message, created = inbound.api_message_receive(
            channel=channel,
            external_id=fields["contact"]["external_id"],
            name=fields["contact"]["name"],
            content=fields["content"],
            external_message_id=fields["external_message_id"],
        )
        message = message_get_in_conversation(
            conversation=message.conversation, message_id=message.pk
        )
        return Response(
            MessageOutputSerializer(message).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
