from __future__ import annotations

from typing import Any

from rest_framework import serializers

from billing.models import CreditLedgerEntry
from hub.api import StrictSerializerMixin

# One top-up this large is a typo, not a purchase.
MAX_CREDITS_PER_ADD = 10_000_000


class CreditBalanceSerializer(serializers.Serializer[dict[str, int]]):
    balance = serializers.IntegerField()
    credits_per_reply = serializers.IntegerField(help_text="This tenant's price of an AI reply.")
    credits_per_1k_tokens = serializers.IntegerField(
        help_text="Added per thousand tokens the reply spent (any started thousand counts)."
    )
    low_balance_threshold = serializers.IntegerField(
        help_text="Below this, operators are notified and `credits.low` is sent."
    )


class CreditLedgerEntrySerializer(serializers.ModelSerializer[CreditLedgerEntry]):
    class Meta:
        model = CreditLedgerEntry
        fields = ["id", "amount", "balance_after", "reason", "message", "created_at"]


class CreditAddInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    amount = serializers.IntegerField(min_value=1, max_value=MAX_CREDITS_PER_ADD)
    reason = serializers.CharField(max_length=200, required=False, default="top-up")
    idempotency_key = serializers.CharField(
        max_length=100,
        required=False,
        help_text="A repeat with the same key adds nothing and answers the first entry; the "
        "`Idempotency-Key` header works as well.",
    )

    def validate_amount(self, value: Any) -> int:
        # IntegerField accepts "5" and 5.0; credits are whole numbers sent as numbers.
        if not isinstance(self.initial_data.get("amount"), int) or isinstance(
            self.initial_data.get("amount"), bool
        ):
            raise serializers.ValidationError("Must be a whole number, not a string or a float.")
        return int(value)
