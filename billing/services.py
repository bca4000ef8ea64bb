"""Writes on credits. Every change locks the balance row and appends one ledger entry."""

from __future__ import annotations

from django.db import transaction

from billing.models import CreditBalance, CreditLedgerEntry
from hub.exceptions import ApplicationError

BALANCE_ROW_ID = 1


class InvalidCreditAmount(ApplicationError):
    default_code = "invalid_amount"
    default_detail = "The amount must be a positive whole number of credits."


def _locked_balance() -> CreditBalance:
    CreditBalance.objects.get_or_create(pk=BALANCE_ROW_ID)
    return CreditBalance.objects.select_for_update().get(pk=BALANCE_ROW_ID)


@transaction.atomic
def credit_add(
    *, amount: int, reason: str, idempotency_key: str | None = None
) -> CreditLedgerEntry:
    """Adds credits to the current tenant. Idempotent when given a key: a repeat returns the
    first entry and changes nothing."""
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidCreditAmount()
    # The row lock serialises writers, so the idempotency check after it cannot race.
    balance = _locked_balance()
    if idempotency_key:
        existing = CreditLedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing:
            return existing
    balance.balance += amount
    balance.save(update_fields=["balance", "updated_at"])
    return CreditLedgerEntry.objects.create(
        amount=amount,
        balance_after=balance.balance,
        reason=reason,
        idempotency_key=idempotency_key,
    )
