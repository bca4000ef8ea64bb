from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors, services
from billing.api.serializers import (
    CreditAddInputSerializer,
    CreditBalanceSerializer,
    CreditLedgerEntrySerializer,
)
from billing.models import CreditLedgerEntry
from conversations.api.serializers import ApiErrorSerializer
from hub.exceptions import ApplicationError


class CanManageCredits(BasePermission):
    """Only a key the platform admin flagged (`ApiKey.can_manage_credits`) adds credits: a
    tenant's ordinary keys run its integrations and must not be able to mint money."""

    message = (
        "This API key may not add credits; the platform admin can allow it (can_manage_credits)."
    )

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(getattr(request.auth, "can_manage_credits", False))


class CreditBalanceView(APIView):
    @extend_schema(
        summary="The tenant's credit balance and prices", responses=CreditBalanceSerializer
    )
    def get(self, request: Request) -> Response:
        price = selectors.credit_price_get()
        return Response(
            CreditBalanceSerializer(
                {
                    "balance": selectors.credit_balance_get(),
                    "credits_per_reply": price.per_reply,
                    "credits_per_1k_tokens": price.per_1k_tokens,
                    "low_balance_threshold": selectors.credit_low_threshold_get(),
                }
            ).data
        )


class CreditAddView(APIView):
    permission_classes = [IsAuthenticated, CanManageCredits]

    @extend_schema(
        summary="Add credits",
        description="Adds credits to the key's tenant and answers the ledger entry. Only keys "
        "the platform admin allowed to manage credits may call it. Idempotent by "
        "`idempotency_key` (or the `Idempotency-Key` header): a repeat answers 200 with the "
        "first entry and adds nothing; the same key with another amount is a 409.",
        request=CreditAddInputSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
        responses={
            201: CreditLedgerEntrySerializer,
            200: OpenApiResponse(CreditLedgerEntrySerializer, description="A repeated key."),
            400: OpenApiResponse(ApiErrorSerializer, description="`validation_error`."),
            401: OpenApiResponse(ApiErrorSerializer, description="No or an unknown API key."),
            403: OpenApiResponse(
                ApiErrorSerializer, description="`permission_denied`: the key may not add credits."
            ),
            409: OpenApiResponse(
                ApiErrorSerializer,
                description="`idempotency_key_reused`: the key was used for another amount.",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = CreditAddInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        header_key = request.headers.get("Idempotency-Key", "").strip()
        body_key = data.validated_data.get("idempotency_key", "")
        if header_key and body_key and header_key != body_key:
            raise ApplicationError(
                "The Idempotency-Key header and idempotency_key differ.", code="validation_error"
            )
        key = body_key or header_key
        if len(key) > 100:
            raise ApplicationError(
                "The idempotency key is at most 100 characters.", code="validation_error"
            )
        # Namespaced: a caller's key can never collide with the hub's own (`reply:<id>`…).
        ledger_key = f"api:{key}" if key else None
        entry, created = services.credit_top_up(
            amount=data.validated_data["amount"],
            reason=data.validated_data["reason"],
            idempotency_key=ledger_key,
        )
        return Response(
            CreditLedgerEntrySerializer(entry).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class CreditLedgerView(generics.ListAPIView[CreditLedgerEntry]):
    serializer_class = CreditLedgerEntrySerializer

    @extend_schema(summary="Every change of the credit balance, newest first")
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[CreditLedgerEntry]:
        return selectors.credit_ledger_list()
