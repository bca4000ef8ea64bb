"""Writes on credits. Every change locks the balance row and appends one ledger entry."""

from __future__ import annotations

import uuid

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


class InsufficientCredits(ApplicationError):
    status_code = 402
    default_code = "insufficient_credits"
    default_detail = "Not enough credits."


@transaction.atomic
def credit_debit(
    *,
    amount: int,
    reason: str,
    idempotency_key: str,
    message_id: uuid.UUID | str | None = None,
) -> CreditLedgerEntry:
    """Takes credits from the current tenant, once per `idempotency_key` (a repeat returns the
    first entry), never below zero: raises InsufficientCredits instead. Writers serialise on the
    balance row's lock, so concurrent debits can never overdraw."""
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidCreditAmount()
    balance = _locked_balance()
    existing = CreditLedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
    if existing:
        return existing
    if balance.balance < amount:
        raise InsufficientCredits(
            f"{amount} credit(s) needed, {balance.balance} available.",
            details={"needed": amount, "balance": balance.balance},
        )
    balance.balance -= amount
    balance.save(update_fields=["balance", "updated_at"])
    return CreditLedgerEntry.objects.create(
        amount=-amount,
        balance_after=balance.balance,
        reason=reason,
        idempotency_key=idempotency_key,
        message=message_id,
    )
