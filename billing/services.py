"""Writes on credits. Every change locks the balance row and appends one ledger entry."""

from __future__ import annotations

import logging
import uuid

from django.db import transaction
from django.utils import timezone

from billing.models import CreditBalance, CreditLedgerEntry
from billing.selectors import credit_low_threshold_get
from hub.db import PreparedQuery, insert_unless_conflict, save_fields
from hub.events import event_publish
from hub.exceptions import ApplicationError, ConflictError
from inbox.models import Notification
from inbox.services import notification_create

logger = logging.getLogger(__name__)

BALANCE_ROW_ID = 1


class InvalidCreditAmount(ApplicationError):
    default_code = "invalid_amount"
    default_detail = "The amount must be a positive whole number of credits."


class IdempotencyKeyReused(ConflictError):
    default_code = "idempotency_key_reused"
    default_detail = "This idempotency key was used for a different amount."


# On every charged reply.
_BALANCE_LOCKED = PreparedQuery(
    lambda: CreditBalance.objects.select_for_update().filter(pk=BALANCE_ROW_ID)
)
_ENTRY_BY_KEY = PreparedQuery(
    lambda key: CreditLedgerEntry.objects.filter(idempotency_key=key), key=str
)


def _locked_balance() -> CreditBalance:
    balance: CreditBalance | None = _BALANCE_LOCKED.first()
    if balance is None:  # a tenant's first change
        CreditBalance.objects.get_or_create(pk=BALANCE_ROW_ID)
        balance = CreditBalance.objects.select_for_update().get(pk=BALANCE_ROW_ID)
    return balance


def _low_balance_check(balance: CreditBalance) -> None:
    """Announces a balance below the tenant's threshold once (an operator notification and the
    `credits.low` event, both after commit); a balance back above it re-arms the alert. Runs
    under the balance row's lock, so concurrent debits announce it once."""
    threshold = credit_low_threshold_get()
    if balance.balance >= threshold:
        if balance.low_alerted_at is not None:
            balance.low_alerted_at = None
            balance.save(update_fields=["low_alerted_at", "updated_at"])
        return
    if balance.low_alerted_at is not None:
        return
    balance.low_alerted_at = timezone.now()
    balance.save(update_fields=["low_alerted_at", "updated_at"])
    logger.warning("credits low", extra={"balance": balance.balance, "threshold": threshold})
    notification_create(
        kind=Notification.Kind.LOW_CREDITS,
        title="Credits are running low",
        body=f"{balance.balance} credit(s) left, below the threshold of {threshold}. Without "
        "credits the AI stops answering and conversations go to operators.",
    )
    event_publish(
        name="credits.low",
        payload={
            "balance": balance.balance,
            "threshold": threshold,
            "at": balance.low_alerted_at.isoformat(),
        },
    )


@transaction.atomic
def credit_add(
    *, amount: int, reason: str, idempotency_key: str | None = None
) -> CreditLedgerEntry:
    """Adds credits to the current tenant; see `credit_top_up`."""
    entry, _ = credit_top_up(amount=amount, reason=reason, idempotency_key=idempotency_key)
    return entry


@transaction.atomic
def credit_top_up(
    *, amount: int, reason: str, idempotency_key: str | None = None
) -> tuple[CreditLedgerEntry, bool]:
    """Adds credits to the current tenant: `(entry, created)`. Idempotent when given a key: a
    repeat returns the first entry and changes nothing (IdempotencyKeyReused when its amount
    differs). A balance lifted back above the low threshold re-arms the low-balance alert."""
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidCreditAmount()
    # The row lock serialises writers, so the idempotency check after it cannot race.
    balance = _locked_balance()
    if idempotency_key:
        existing = CreditLedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing:
            if existing.amount != amount:
                raise IdempotencyKeyReused(
                    details={"amount": existing.amount, "entry": str(existing.pk)}
                )
            return existing, False
    balance.balance += amount
    balance.save(update_fields=["balance", "updated_at"])
    entry = CreditLedgerEntry.objects.create(
        amount=amount,
        balance_after=balance.balance,
        reason=reason,
        idempotency_key=idempotency_key,
    )
    _low_balance_check(balance)
    return entry, True


class InsufficientCredits(ApplicationError):
    status_code = 402
    default_code = "insufficient_credits"
    default_detail = "Not enough credits."


def credit_debit(
    *,
    amount: int,
    reason: str,
    idempotency_key: str,
    message_id: uuid.UUID | str | None = None,
) -> CreditLedgerEntry:
    """Takes credits from the current tenant, once per `idempotency_key` (a repeat returns the
    first entry), never below zero: raises InsufficientCredits instead. Writers serialise on the
    balance row's lock, so concurrent debits can never overdraw. A fall below the low-balance
    threshold is announced once (see `_low_balance_check`).

    Inside a transaction it takes no savepoint of its own: two round trips on every charged
    reply (docs/performance.md, change 59). A shortfall writes nothing and is raised once the
    atomic block has ended, so a caller that catches it carries on in its transaction."""
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidCreditAmount()
    outcome = _debit_unless_short(
        amount=amount, reason=reason, idempotency_key=idempotency_key, message_id=message_id
    )
    if isinstance(outcome, InsufficientCredits):
        raise outcome
    return outcome


@transaction.atomic(savepoint=False)
def _debit_unless_short(
    *, amount: int, reason: str, idempotency_key: str, message_id: uuid.UUID | str | None
) -> CreditLedgerEntry | InsufficientCredits:
    balance = _locked_balance()
    if balance.balance < amount:
        # A repeat of a debit made while there was enough is that debit, not a shortfall.
        existing: CreditLedgerEntry | None = _ENTRY_BY_KEY.first(key=idempotency_key)
        return existing or InsufficientCredits(
            f"{amount} credit(s) needed, {balance.balance} available.",
            details={"needed": amount, "balance": balance.balance},
        )
    entry = CreditLedgerEntry(
        amount=-amount,
        balance_after=balance.balance - amount,
        reason=reason,
        idempotency_key=idempotency_key,
        message=message_id,
    )
    # The key's unique constraint finds a repeat in the insert itself: no read before it on
    # every debit (docs/performance.md, change 62). The balance row's lock is held, so the
    # entry that holds the key was committed before this debit began.
    if not insert_unless_conflict(entry):
        return _ENTRY_BY_KEY.first(key=idempotency_key)
    balance.balance -= amount
    save_fields(balance, ["balance", "updated_at"])
    _low_balance_check(balance)
    return entry
