"""Reads on lead extraction, in the current tenant's schema."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import BooleanField, F, Q, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from conversations.models import Conversation
from extraction.models import Extraction, ExtractionField
from hub.db import prepared_exists
from hub.exceptions import NotFoundError
from retention.encryption import ENVELOPE
from tenants.models import Tenant

IDLE_MINUTES_RANGE = (5, 15)


def extraction_idle_minutes(*, tenant: Tenant) -> int:
    """The tenant's choice (kept within 5-15), else the platform default."""
    chosen = tenant.extraction_idle_minutes
    if chosen is None:
        return settings.HUB_EXTRACTION_IDLE_MINUTES
    low, high = IDLE_MINUTES_RANGE
    return min(max(chosen, low), high)


def conversations_due_for_extraction(*, now: datetime, idle_minutes: int) -> QuerySet[Conversation]:
    """Conversations quiet for `idle_minutes` with messages newer than their last extraction,
    leaving out those waiting out a failure's backoff, and those that failed
    `HUB_EXTRACTION_MAX_ATTEMPTS` times in a row until a new message arrives. Oldest first."""
    return _conversations_due(**_due_boundaries(now=now, idle_minutes=idle_minutes))


def _due_boundaries(*, now: datetime, idle_minutes: int) -> dict[str, Any]:
    """The values `_conversations_due` takes, shared by the list the job hands out and the
    minute's check that it has something to hand out."""
    return {
        "now": now,
        "quiet_before": now - timedelta(minutes=idle_minutes),
        "max_attempts": settings.HUB_EXTRACTION_MAX_ATTEMPTS,
    }


def _conversations_due(
    *, now: datetime, quiet_before: datetime, max_attempts: int
) -> QuerySet[Conversation]:
    return (
        Conversation.objects.annotate(
            extracted=Coalesce(F("extraction_cursor__extracted_seq"), Value(0)),
            failures=Coalesce(F("extraction_cursor__attempts"), Value(0)),
            failed_at_seq=Coalesce(F("extraction_cursor__attempted_seq"), Value(0)),
            retry_at=F("extraction_cursor__next_attempt_at"),
        )
        .filter(
            last_seq__gt=F("extracted"),
            last_activity_at__lte=quiet_before,
        )
        .filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
        .filter(
            # An expression, not a value: compiled with a stand-in past the small integer
            # column's range, a value's comparison would be left out (hub.db.PreparedQuery).
            Q(failures__lt=Value(max_attempts)) | Q(last_seq__gt=F("failed_at_seq"))
        )
        .order_by("last_activity_at")
    )


# The dispatch job's check, in every tenant every minute (hub.db.prepared_exists).
_ANY_DUE = prepared_exists(
    _conversations_due, now=datetime, quiet_before=datetime, max_attempts=int
)


def extraction_pending(*, tenant: Tenant, now: datetime) -> bool:
    """Whether the dispatch job has a conversation to hand out (extraction on, one due)."""
    if not tenant.extraction_enabled:
        return False
    idle = extraction_idle_minutes(tenant=tenant)
    return _ANY_DUE(**_due_boundaries(now=now, idle_minutes=idle))


def extraction_field_list() -> QuerySet[ExtractionField]:
    return ExtractionField.objects.all()


def extraction_field_get(*, field_id: uuid.UUID | str) -> ExtractionField:
    field = ExtractionField.objects.filter(pk=field_id).first()
    if field is None:
        raise NotFoundError("No such extraction field.")
    return field


def extraction_list(
    *,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    channel_id: uuid.UUID | None = None,
    conversation_id: uuid.UUID | None = None,
    field: str | None = None,
    q: str | None = None,
) -> QuerySet[Extraction]:
    """Extraction versions, newest first, with their conversation's channel as `channel_id`.
    `field` keeps those that found that field; `q` those whose values contain the text."""
    extractions = Extraction.objects.annotate(channel_id=F("conversation__channel_id"))
    if created_after:
        extractions = extractions.filter(created_at__gte=created_after)
    if created_before:
        extractions = extractions.filter(created_at__lt=created_before)
    if channel_id:
        extractions = extractions.filter(conversation__channel_id=channel_id)
    if conversation_id:
        extractions = extractions.filter(conversation_id=conversation_id)
    if field:
        extractions = extractions.filter(found_fields__contains=[field])
    if q:
        extractions = _values_containing(extractions, q)
    return extractions.order_by("-created_at", "-id")


def _values_containing(extractions: QuerySet[Any], q: str) -> QuerySet[Any]:
    """The versions with a value of `data` containing `q`, case-insensitively. PostgreSQL
    matches the plaintext rows; the rows of a tenant that encrypts are decrypted and matched
    here, one pass over every candidate version (docs/retention.md)."""
    encrypted = Q(data__has_key=ENVELOPE)
    # Values only: every row's keys are field names, which would match most searches.
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    table = Extraction._meta.db_table
    matches = RawSQL(  # noqa: S611 - the table name is ours and the text is a parameter
        f'EXISTS (SELECT 1 FROM jsonb_each_text("{table}"."data") AS kv '  # noqa: S608
        "WHERE kv.value ILIKE %s)",
        [pattern],
        output_field=BooleanField(),
    )
    needle = q.lower()
    decrypted = extractions.filter(encrypted).values_list("pk", "data").iterator(chunk_size=2000)
    found = [pk for pk, data in decrypted if any(needle in text for text in _value_texts(data))]
    return extractions.alias(matches=matches).filter(
        (~encrypted & Q(matches=True)) | Q(pk__in=found)
    )


def _value_texts(data: dict[str, Any]) -> Iterator[str]:
    """Each value as `jsonb_each_text` prints it, lowercased: strings bare, anything else as
    JSON (null prints nothing)."""
    for value in data.values():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        yield text.lower()


def extraction_required_field_names() -> list[str]:
    return list(ExtractionField.objects.filter(required=True).values_list("name", flat=True))
