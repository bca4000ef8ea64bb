from __future__ import annotations

import uuid

from django.db import models


class CreditBalance(models.Model):
    """The tenant's one balance row; every change goes through the ledger under its row lock."""

    balance = models.BigIntegerField(default=0)
    # Set when operators were told the balance fell below the threshold; cleared when credits
    # lift it above again, so each fall is announced once.
    low_alerted_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(balance__gte=0), name="credit_balance_not_negative"
            )
        ]

    def __str__(self) -> str:
        return f"{self.balance} credits"


class CreditLedgerEntry(models.Model):
    """Append-only: one row per change of the balance, negative for a debit."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    amount = models.BigIntegerField()
    balance_after = models.BigIntegerField()
    reason = models.CharField(max_length=200)
    message = models.UUIDField(null=True, blank=True, help_text="The message this change paid for.")
    idempotency_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "credit ledger entries"

    def __str__(self) -> str:
        return f"{self.amount:+d} ({self.reason})"
