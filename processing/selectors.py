"""Reads on processing: what the sweep (processing/jobs.py) finds left behind by lost tasks."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import F, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from conversations.models import Message
from hub.db import prepared_exists
from processing.models import ConversationCursor, ReplyCharge

STRANDED_AFTER = timedelta(minutes=1)
# How far back the sweep looks. It runs every minute in every tenant with work, and without a
# bound it read every inbound message of the tenant's history each time (90-130 ms with 100,000
# messages, docs/performance.md change 21); a message a lost task left waiting is found within
# minutes, and a day covers the longest outage worth answering late.
SWEEP_WINDOW = timedelta(days=1)


def messages_stranded_unprocessed() -> QuerySet[Message]:
    """Inbound messages of conversations the AI answers, waiting past the threshold (within
    the last SWEEP_WINDOW: only conversations active since are read)."""
    now = timezone.now()
    return _messages_stranded(stranded_before=now - STRANDED_AFTER, since=now - SWEEP_WINDOW)


def _messages_stranded(*, stranded_before: datetime, since: datetime) -> QuerySet[Message]:
    processed_seq = ConversationCursor.objects.filter(conversation=OuterRef("conversation")).values(
        "processed_seq"
    )[:1]
    return (
        Message.objects.filter(
            direction=Message.Direction.IN,
            created_at__lt=stranded_before,
            created_at__gte=since,
            conversation__ai_active=True,
            conversation__last_activity_at__gte=since,
        )
        .annotate(processed=Coalesce(Subquery(processed_seq), Value(0)))
        .filter(seq__gt=F("processed"))
    )


def reply_charges_stranded() -> QuerySet[ReplyCharge]:
    """Charges of replies that went out but were never settled."""
    return _charges_stranded(stranded_before=timezone.now() - STRANDED_AFTER)


def _charges_stranded(*, stranded_before: datetime) -> QuerySet[ReplyCharge]:
    return ReplyCharge.objects.filter(
        charged_at__isnull=True,
        unpaid=False,
        created_at__lt=stranded_before,
        message__status__in=["sent", "delivered", "read"],
    )


_ANY_MESSAGE_STRANDED = prepared_exists(
    _messages_stranded, stranded_before=datetime, since=datetime
)
_ANY_CHARGE_STRANDED = prepared_exists(_charges_stranded, stranded_before=datetime)


def sweep_pending() -> bool:
    """The sweep's check, in every tenant every minute (hub.db.prepared_exists)."""
    now = timezone.now()
    stranded_before = now - STRANDED_AFTER
    return _ANY_MESSAGE_STRANDED(
        stranded_before=stranded_before, since=now - SWEEP_WINDOW
    ) or _ANY_CHARGE_STRANDED(stranded_before=stranded_before)
