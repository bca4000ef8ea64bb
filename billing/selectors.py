from __future__ import annotations

from django.db.models import QuerySet

from billing.models import CreditBalance, CreditLedgerEntry


def credit_balance_get() -> int:
    row = CreditBalance.objects.filter(pk=1).values_list("balance", flat=True).first()
    return int(row or 0)


def credit_ledger_list() -> QuerySet[CreditLedgerEntry]:
    return CreditLedgerEntry.objects.all()


def credit_can_afford(*, amount: int) -> bool:
    return credit_balance_get() >= amount
