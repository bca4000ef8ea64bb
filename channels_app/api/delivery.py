"""`POST /api/v1/messages/{id}/retry/`: redeliver a failed outbound message."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app.delivery import message_retry
from conversations.api.serializers import MessageOutputSerializer
from conversations.selectors import message_get


class MessageRetryView(APIView):
    @extend_schema(
        summary="Redeliver a failed outbound message",
        request=None,
        responses={
            202: MessageOutputSerializer,
            404: OpenApiResponse(description="No such message in this tenant."),
            409: OpenApiResponse(description="The message is not a failed outbound message."),
        },
    )
    def post(self, request: Request, message_id: str) -> Response:
        message = message_retry(message=message_get(message_id=message_id))
        return Response(MessageOutputSerializer(message).data, status=status.HTTP_202_ACCEPTED)
