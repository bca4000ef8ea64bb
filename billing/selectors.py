"""Reads on credits: the balance, the ledger, this tenant's prices and its usage."""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from billing.models import CreditBalance, CreditLedgerEntry
from hub.db import PreparedQuery
from tenants.connection import tenant_connection
from tenants.models import Tenant


@dataclass(frozen=True)
class CreditPrice:
    per_reply: int
    per_1k_tokens: int


# Before every AI reply.
_BALANCE = PreparedQuery(
    lambda: CreditBalance.objects.filter(pk=1).values_list("balance", flat=True)
)


def credit_balance_get() -> int:
    return int(_BALANCE.first() or 0)


def credit_ledger_list() -> QuerySet[CreditLedgerEntry]:
    return CreditLedgerEntry.objects.all()


def credit_can_afford(*, amount: int) -> bool:
    return credit_balance_get() >= amount


def _tenant_overrides() -> dict[str, int | None]:
    """The current tenant's own credit settings (None: the platform default). Read from the row
    the request or task carries, else looked up by schema (never a cached miss: a tenant being
    provisioned is found in its own transaction)."""
    fields = ("credits_per_reply", "credits_per_1k_tokens", "low_credits_threshold")
    tenant = tenant_connection().tenant
    if isinstance(tenant, Tenant):
        return {name: getattr(tenant, name) for name in fields}
    row = Tenant.objects.filter(schema_name=tenant_connection().schema_name).values(*fields).first()
    return row or dict.fromkeys(fields)


def credit_price_get() -> CreditPrice:
    """This tenant's prices: its own where the platform set them, the platform's otherwise."""
    overrides = _tenant_overrides()
    per_reply, per_1k = overrides["credits_per_reply"], overrides["credits_per_1k_tokens"]
    return CreditPrice(
        per_reply=settings.HUB_CREDITS_PER_REPLY if per_reply is None else per_reply,
        per_1k_tokens=settings.HUB_CREDITS_PER_1K_TOKENS if per_1k is None else per_1k,
    )


def credit_reply_price(*, tokens: int) -> int:
    """What an AI reply that spent `tokens` costs this tenant (any started thousand counts)."""
    price = credit_price_get()
    return price.per_reply + math.ceil(tokens / 1000 * price.per_1k_tokens)


def credit_low_threshold_get() -> int:
    threshold = _tenant_overrides()["low_credits_threshold"]
    return int(settings.HUB_CREDITS_LOW_BALANCE if threshold is None else threshold)


@dataclass(frozen=True)
class UsageRow:
    day: datetime.date
    channel: str
    replies: int
    tokens: int
    # Charged once delivered; `pending` are not delivered yet, `unpaid` found the balance short.
    credits: int
    pending: int
    unpaid: int


@dataclass(frozen=True)
class LedgerDay:
    day: datetime.date
    added: int
    spent: int
    balance_after: int


def credit_usage_by_day_and_channel(*, days: int) -> list[UsageRow]:
    """AI replies per day (UTC) and channel over the last `days` days: how many, the tokens
    they spent, the credits charged for them, and how many wait for delivery or went unpaid.
    One query."""
    from processing.models import ReplyCharge

    charged = Q(charged_at__isnull=False)
    rows = (
        ReplyCharge.objects.filter(created_at__gte=timezone.now() - datetime.timedelta(days=days))
        .annotate(day=TruncDate("created_at", tzinfo=datetime.UTC))
        .values("day", "message__channel__name")
        .annotate(
            replies=Count("pk"),
            tokens=Coalesce(Sum("tokens"), 0),
            credits=Coalesce(Sum("amount", filter=charged), 0),
            pending=Count("pk", filter=~charged & Q(unpaid=False)),
            unpaid=Count("pk", filter=Q(unpaid=True)),
        )
        .order_by("-day", "message__channel__name")
    )
    return [
        UsageRow(
            day=row["day"],
            channel=row["message__channel__name"],
            replies=row["replies"],
            tokens=row["tokens"],
            credits=row["credits"],
            pending=row["pending"],
            unpaid=row["unpaid"],
        )
        for row in rows
    ]


def credit_ledger_by_day(*, days: int) -> list[LedgerDay]:
    """Every change of the balance per day (UTC): credits added, credits spent (replies,
    extractions, anything debited), and the balance at the end of the day."""
    entries = CreditLedgerEntry.objects.filter(
        created_at__gte=timezone.now() - datetime.timedelta(days=days)
    ).annotate(day=TruncDate("created_at", tzinfo=datetime.UTC))
    totals = (
        entries.values("day")
        .annotate(
            added=Coalesce(Sum("amount", filter=Q(amount__gt=0)), 0),
            spent=Coalesce(Sum("amount", filter=Q(amount__lt=0)), 0),
        )
        .order_by("-day")
    )
    closing = {
        row["day"]: row["balance_after"]
        for row in entries.order_by("day", "-created_at")
        .distinct("day")
        .values("day", "balance_after")
    }
    return [
        LedgerDay(
            day=row["day"],
            added=row["added"],
            spent=-row["spent"],
            balance_after=closing.get(row["day"], 0),
        )
        for row in totals
    ]
