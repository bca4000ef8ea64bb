from __future__ import annotations

from rest_framework import serializers

from billing.models import CreditLedgerEntry


class CreditBalanceSerializer(serializers.Serializer[dict[str, int]]):
    balance = serializers.IntegerField()


class CreditLedgerEntrySerializer(serializers.ModelSerializer[CreditLedgerEntry]):
    class Meta:
        model = CreditLedgerEntry
        fields = ["id", "amount", "balance_after", "reason", "message", "created_at"]
