"""The credit ledger: every change recorded, idempotent grants, never below zero."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from billing.models import CreditBalance, CreditLedgerEntry
from billing.selectors import credit_balance_get
from billing.services import InvalidCreditAmount, credit_add


def test_grants_are_recorded_and_idempotent_by_key(tenant_a) -> None:
    with tenant_a.schema():
        start = credit_balance_get()
        first = credit_add(amount=40, reason="top-up", idempotency_key="invoice-7")
        again = credit_add(amount=40, reason="top-up", idempotency_key="invoice-7")
        assert first.pk == again.pk
        assert credit_balance_get() == start + 40
        assert first.balance_after == start + 40


@pytest.mark.parametrize("amount", [0, -5, True, 2.5])
def test_grant_must_be_a_positive_whole_number(tenant_a, amount) -> None:
    with tenant_a.schema(), pytest.raises(InvalidCreditAmount):
        credit_add(amount=amount, reason="x")


def test_the_database_refuses_a_negative_balance(tenant_a) -> None:
    with tenant_a.schema(), pytest.raises(IntegrityError), transaction.atomic():
        CreditBalance.objects.filter(pk=1).update(balance=-1)


def test_ledger_api_lists_changes_of_this_tenant_only(tenant_a, tenant_b) -> None:
    with tenant_a.schema():
        credit_add(amount=5, reason="bonus for A")
    ledger_a = tenant_a.client().get("/api/v1/credits/ledger/").json()["results"]
    ledger_b = tenant_b.client().get("/api/v1/credits/ledger/").json()["results"]
    assert ledger_a[0]["reason"] == "bonus for A"
    assert set(ledger_a[0]) == {"id", "amount", "balance_after", "reason", "message", "created_at"}
    assert "bonus for A" not in {entry["reason"] for entry in ledger_b}
    with tenant_b.schema():
        assert CreditLedgerEntry.objects.filter(reason="bonus for A").count() == 0
