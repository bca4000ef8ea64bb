from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors
from billing.api.serializers import CreditBalanceSerializer, CreditLedgerEntrySerializer
from billing.models import CreditLedgerEntry


class CreditBalanceView(APIView):
    @extend_schema(summary="The tenant's credit balance", responses=CreditBalanceSerializer)
    def get(self, request: Request) -> Response:
        return Response(CreditBalanceSerializer({"balance": selectors.credit_balance_get()}).data)


class CreditLedgerView(generics.ListAPIView[CreditLedgerEntry]):
    serializer_class = CreditLedgerEntrySerializer

    @extend_schema(summary="Every change of the credit balance, newest first")
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[CreditLedgerEntry]:
        return selectors.credit_ledger_list()
