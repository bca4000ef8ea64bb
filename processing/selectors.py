"""Reads on processing: what the sweep (processing/jobs.py) finds left behind by lost tasks."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import F, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from conversations.models import Message
from processing.models import ConversationCursor, ReplyCharge

STRANDED_AFTER = timedelta(minutes=1)


def messages_stranded_unprocessed() -> QuerySet[Message]:
    """Inbound messages of conversations the AI answers, waiting past the threshold."""
    processed_seq = ConversationCursor.objects.filter(conversation=OuterRef("conversation")).values(
        "processed_seq"
    )[:1]
    return (
        Message.objects.filter(
            direction=Message.Direction.IN,
            created_at__lt=timezone.now() - STRANDED_AFTER,
            conversation__ai_active=True,
        )
        .annotate(processed=Coalesce(Subquery(processed_seq), Value(0)))
        .filter(seq__gt=F("processed"))
    )


def reply_charges_stranded() -> QuerySet[ReplyCharge]:
    """Charges of replies that went out but were never settled."""
    return ReplyCharge.objects.filter(
        charged_at__isnull=True,
        unpaid=False,
        created_at__lt=timezone.now() - STRANDED_AFTER,
        message__status__in=["sent", "delivered", "read"],
    )


def sweep_pending() -> bool:
    return messages_stranded_unprocessed().exists() or reply_charges_stranded().exists()
