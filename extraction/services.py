"""Lead extraction: running one (scheduled when a conversation goes quiet, or asked for), and
the tenant's extraction schema.

A run reads the conversation, asks the extractor (one structured-output call through
`agents.llm`, or the rule-based extractor without an API key), validates the answer against the
tenant's fields, and writes a new version with its diff against the previous one, charging
credits once per run. A failure is recorded on the conversation's cursor with a backoff (the
dispatcher tries again once it has passed) and counted for the tenant, whose operators are
notified when `HUB_EXTRACTION_FAILURES_TO_NOTIFY` runs in a row failed.

No transaction is held while the extractor runs: a lease on the conversation's extraction cursor
keeps two runs of one conversation apart instead, and the run's connection goes back to its pool
meanwhile.
"""

from __future__ import annotations

import json
import logging
import math
import random
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Now
from django.utils import timezone
from rest_framework import status

from agents.llm import LlmUnavailable, llm_configured, llm_structured
from agents.models import LlmCall
from billing.selectors import credit_can_afford
from billing.services import InsufficientCredits, credit_debit
from channels_app.providers.base import content_as_text
from conversations.models import Contact, Conversation, Message
from conversations.selectors import conversation_get
from conversations.services.contacts import contact_update
from extraction import selectors
from extraction.models import Extraction, ExtractionCursor, ExtractionField, ExtractionHealth
from extraction.rules import rules_extract
from extraction.schema import FieldSpec, extraction_instructions, extraction_json_schema
from extraction.validation import Validated, answer_validate, data_diff
from hub.events import event_publish
from hub.exceptions import ApplicationError, ConflictError
from inbox.models import Notification
from inbox.services import notification_create
from tenants.selectors import tenant_current

logger = logging.getLogger(__name__)

MAX_FIELDS = 50
# Conversations handed to workers per dispatch; the rest wait for the next minute.
DISPATCH_LIMIT = 500
# Contact columns a confirmed field of the same name and type fills when the contact has none.
CONTACT_COLUMNS = {
    "name": ExtractionField.Type.STRING,
    "email": ExtractionField.Type.EMAIL,
    "phone": ExtractionField.Type.PHONE,
}
SENDER_LABELS: dict[str, str] = {
    Message.SenderType.CONTACT: "Customer",
    Message.SenderType.AI: "Assistant",
    Message.SenderType.OPERATOR: "Agent",
    Message.SenderType.SYSTEM: "System",
}


class NothingToExtract(ConflictError):
    default_code = "nothing_to_extract"
    default_detail = "The conversation has no messages to extract from."


class NoExtractionFields(ConflictError):
    default_code = "no_extraction_fields"
    default_detail = "The extraction schema has no fields (see /api/v1/extraction-fields/)."


class ExtractionInProgress(ConflictError):
    default_code = "extraction_in_progress"
    default_detail = "An extraction of this conversation is running; try again shortly."


class LeaseLost(Exception):
    """The run's lease on the conversation ran out and another run took it."""


class ExtractionFailed(ApplicationError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "extraction_failed"
    default_detail = "The extractor did not answer; the run is retried automatically."


class FieldExists(ConflictError):
    default_code = "field_exists"
    default_detail = "An extraction field with this name exists."


class TooManyFields(ApplicationError):
    default_code = "too_many_fields"
    default_detail = f"An extraction schema holds at most {MAX_FIELDS} fields."


# --- The schema ------------------------------------------------------------------------------


def _validated(field: ExtractionField) -> None:
    try:
        field.full_clean(validate_unique=False)
    except ValidationError as error:
        raise ApplicationError(
            "The extraction field is invalid.", code="validation_error", details=error.message_dict
        ) from None


def _saved(field: ExtractionField) -> ExtractionField:
    if ExtractionField.objects.filter(name=field.name).exclude(pk=field.pk).exists():
        raise FieldExists()
    try:
        with transaction.atomic():
            field.save()
    except IntegrityError:  # created by a concurrent request meanwhile
        raise FieldExists() from None
    return field


@transaction.atomic
def extraction_field_create(
    *,
    name: str,
    type: str = ExtractionField.Type.STRING,
    description: str = "",
    required: bool = False,
    enum_values: Sequence[str] = (),
    position: int = 0,
) -> ExtractionField:
    """A new field of the tenant's schema: 400 when invalid (an enum without values, values on
    another type, a bad name), 409 `field_exists` for a taken name, 400 past 50 fields."""
    if ExtractionField.objects.count() >= MAX_FIELDS:
        raise TooManyFields()
    field = ExtractionField(
        name=name,
        type=type,
        description=description,
        required=required,
        enum_values=list(enum_values),
        position=position,
    )
    _validated(field)
    return _saved(field)


@transaction.atomic
def extraction_field_update(*, field: ExtractionField, **changes: Any) -> ExtractionField:
    """Changes a field; versions already written keep what they found under its old name."""
    editable = {"name", "type", "description", "required", "enum_values", "position"}
    for key, value in changes.items():
        if key in editable:
            setattr(field, key, list(value) if key == "enum_values" else value)
    _validated(field)
    return _saved(field)


@transaction.atomic
def extraction_field_delete(*, field: ExtractionField) -> None:
    field.delete()


# --- Running ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    answer: dict[str, Any]
    source: str
    model: str = ""
    tokens: int = 0


def _transcript(conversation: Conversation) -> tuple[str, list[str]]:
    """The conversation as `Sender: text` lines, newest kept within
    `HUB_EXTRACTION_MAX_INPUT_CHARS`, and the customer's own texts. Private notes and deleted
    messages are left out."""
    budget = settings.HUB_EXTRACTION_MAX_INPUT_CHARS
    lines: list[str] = []
    customer: list[str] = []
    messages = (
        Message.objects.filter(conversation=conversation, deleted_at__isnull=True, is_private=False)
        .only("sender_type", "content", "text")
        .order_by("-seq")
    )
    for message in messages.iterator(chunk_size=200):
        text = (message.text or content_as_text(message.content)).strip()
        if not text:
            continue
        line = f"{SENDER_LABELS.get(message.sender_type, 'System')}: {text}"
        if len(line) > budget:
            break
        budget -= len(line) + 1
        lines.append(line)
        if message.sender_type == Message.SenderType.CONTACT:
            customer.append(text)
    lines.reverse()
    customer.reverse()
    return "\n".join(lines), customer


def _extract(conversation: Conversation, fields: Sequence[FieldSpec], now: datetime) -> _Answer:
    transcript, customer_texts = _transcript(conversation)
    if not llm_configured():
        return _Answer(answer=rules_extract(fields, customer_texts), source=Extraction.Source.RULES)
    agent = conversation.channel.agent
    answer, usage = llm_structured(
        agent=agent,
        purpose=LlmCall.Purpose.EXTRACTION,
        schema_name="lead",
        schema=extraction_json_schema(fields),
        input_text=transcript,
        instructions=extraction_instructions(today=now.date()),
    )
    return _Answer(
        answer=answer,
        source=Extraction.Source.LLM,
        model=(agent.model if agent else "") or settings.HUB_LLM_MODEL,
        tokens=usage.total_tokens,
    )


def extraction_price(*, tokens: int) -> int:
    return settings.HUB_CREDITS_PER_EXTRACTION + math.ceil(
        tokens / 1000 * settings.HUB_CREDITS_PER_1K_TOKENS
    )


def _backoff(attempts: int) -> timedelta:
    ceiling = min(
        settings.HUB_EXTRACTION_BACKOFF_MAX_SECONDS,
        settings.HUB_EXTRACTION_BACKOFF_BASE_SECONDS * 2 ** (attempts - 1),
    )
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))  # noqa: S311 - jitter


def _health_locked() -> ExtractionHealth:
    ExtractionHealth.objects.get_or_create(pk=1)
    return ExtractionHealth.objects.select_for_update().get(pk=1)


@transaction.atomic
def _failure_record(
    conversation: Conversation, *, through_seq: int, reason: str, now: datetime
) -> None:
    cursor, _ = ExtractionCursor.objects.select_for_update().get_or_create(
        conversation=conversation
    )
    cursor.attempts += 1
    cursor.attempted_seq = through_seq
    cursor.next_attempt_at = now + _backoff(cursor.attempts)
    cursor.last_error = reason[:100]
    cursor.save()
    health = _health_locked()
    health.consecutive_failures += 1
    health.last_error = reason[:100]
    if (
        health.consecutive_failures >= settings.HUB_EXTRACTION_FAILURES_TO_NOTIFY
        and health.notified_at is None
    ):
        notification_create(
            kind=Notification.Kind.EXTRACTION_FAILING,
            title="Lead extraction is failing",
            body=f"The last {health.consecutive_failures} extractions failed ({reason}). "
            "They are retried with backoff; leads are not updated until one succeeds.",
            conversation_id=conversation.pk,
        )
        health.notified_at = now
    health.save()
    logger.warning(
        "extraction failed",
        extra={
            "conversation_id": str(conversation.pk),
            "reason": reason,
            "attempts": cursor.attempts,
        },
    )


def _contact_fill(contact: Contact, fields: Sequence[FieldSpec], validated: Validated) -> None:
    """Writes the confirmed values into the contact's attributes, and into its name, email or
    phone where it has none. An erased contact is never filled again."""
    if contact.erased_at is not None or not validated.confirmed:
        return
    types = {spec.name: spec.type for spec in fields}
    values = {name: validated.data[name] for name in validated.confirmed if name in validated.data}
    changes: dict[str, Any] = {"attributes": {**contact.attributes, **values}}
    for column, kind in CONTACT_COLUMNS.items():
        if column in values and types.get(column) == kind and not getattr(contact, column):
            changes[column] = values[column]
    contact_update(contact=contact, **changes)


def extraction_payload(extraction: Extraction) -> dict[str, Any]:
    """The version as the API shows it, in JSON types (ids as strings)."""
    from extraction.api.serializers import ExtractionOutputSerializer

    data = ExtractionOutputSerializer(extraction).data
    return dict(json.loads(json.dumps(data, cls=DjangoJSONEncoder)))


@contextmanager
def _conversation_held(conversation_id: uuid.UUID) -> Iterator[uuid.UUID | None]:
    """A lease on the conversation's extraction cursor for one run: yields the run's holder id,
    or None while another run's lease has not run out. A row, not a session lock, so that the
    run's connection can go back to its pool while the extractor's model thinks (the API's
    runs are made in a web process's request)."""
    ExtractionCursor.objects.get_or_create(conversation_id=conversation_id)
    holder = uuid.uuid4()
    until = ExpressionWrapper(
        Now() + timedelta(seconds=settings.HUB_CONVERSATION_LEASE_SECONDS),
        output_field=DateTimeField(),
    )
    free = Q(held_until__isnull=True) | Q(held_until__lt=Now())
    cursors = ExtractionCursor.objects.filter(pk=conversation_id)
    if not cursors.filter(free).update(held_by=holder, held_until=until):
        yield None
        return
    try:
        yield holder
    finally:
        try:
            cursors.filter(held_by=holder).update(held_by=None, held_until=None)
        except DatabaseError:
            if connection.in_atomic_block:
                raise
            logger.warning(
                "extraction lease not given up; it runs out by itself",
                extra={"conversation_id": str(conversation_id)},
            )


@transaction.atomic
def _version_write(
    conversation: Conversation,
    *,
    fields: Sequence[FieldSpec],
    answer: _Answer,
    trigger: str,
    through_seq: int,
    holder: uuid.UUID,
) -> Extraction:
    cursor, _ = ExtractionCursor.objects.select_for_update().get_or_create(
        conversation=conversation
    )
    if cursor.held_by != holder:
        # Another run took the conversation once this one's lease ran out: its version stands.
        raise LeaseLost()
    validated = answer_validate(fields, answer.answer)
    previous = Extraction.objects.filter(conversation=conversation).order_by("-version").first()
    extraction = Extraction.objects.create(
        conversation=conversation,
        contact_id=conversation.contact_id,
        version=previous.version + 1 if previous else 1,
        data=validated.data,
        confirmed=validated.confirmed,
        dropped=validated.dropped,
        changes=data_diff(previous.data if previous else {}, validated.data),
        source=answer.source,
        trigger=trigger,
        through_seq=through_seq,
        model=answer.model,
        tokens=answer.tokens,
    )
    price = extraction_price(tokens=answer.tokens)
    if price > 0:
        try:
            credit_debit(
                amount=price,
                reason="Lead extraction",
                idempotency_key=f"extraction:{extraction.pk}",
            )
        except InsufficientCredits:
            # Checked before the run; spent by others meanwhile. The work is kept, unpaid.
            logger.warning(
                "an extraction could not be charged", extra={"extraction": str(extraction.pk)}
            )
        else:
            extraction.credits = price
            extraction.save(update_fields=["credits"])
    cursor.extracted_seq = max(cursor.extracted_seq, through_seq)
    cursor.attempts, cursor.attempted_seq, cursor.next_attempt_at, cursor.last_error = (
        0,
        0,
        None,
        "",
    )
    cursor.save()
    ExtractionHealth.objects.filter(pk=1).exclude(consecutive_failures=0, notified_at=None).update(
        consecutive_failures=0, notified_at=None, last_error=""
    )
    if tenant_current().extraction_updates_contact:
        _contact_fill(conversation.contact, fields, validated)
    event_publish(name="lead.extracted", payload=extraction_payload(extraction))
    return extraction


def extraction_run(
    *, conversation_id: uuid.UUID | str, trigger: str, now: datetime | None = None
) -> Extraction | None:
    """Extracts the conversation's lead once, as a new version.

    `idle` (the scheduler's): only when the tenant has extraction on and the conversation is
    still due (quiet long enough, new messages since its last extraction, not backing off);
    otherwise returns None. Nothing is extracted twice without new messages.
    `manual` (the API's): always runs, or says why not: 404 unknown conversation, 409
    `nothing_to_extract` / `no_extraction_fields` / `extraction_in_progress`, 402 without
    credits, 503 `extraction_failed` when the extractor failed (the failure is recorded and
    retried like a scheduled one).
    Charges `extraction_price` once per run (idempotent by the version's id).
    """
    now = now or timezone.now()
    manual = trigger == Extraction.Trigger.MANUAL
    conversation = conversation_get(conversation_id=conversation_id)
    with _conversation_held(conversation.pk) as holder:
        if holder is None:
            if manual:
                raise ExtractionInProgress()
            return None
        conversation.refresh_from_db()
        tenant = tenant_current()
        if not manual:
            if not tenant.extraction_enabled:
                return None
            due = selectors.conversations_due_for_extraction(
                now=now, idle_minutes=selectors.extraction_idle_minutes(tenant=tenant)
            )
            if not due.filter(pk=conversation.pk).exists():
                return None
        elif conversation.last_seq == 0:
            raise NothingToExtract()
        fields = [FieldSpec.of(field) for field in selectors.extraction_field_list()]
        if not fields:
            if manual:
                raise NoExtractionFields()
            return None
        price = extraction_price(tokens=0)
        if price > 0 and not credit_can_afford(amount=price):
            if manual:
                raise InsufficientCredits(f"An extraction costs {price} credit(s).")
            logger.warning(
                "no credits for an extraction", extra={"conversation_id": str(conversation.pk)}
            )
            return None
        through_seq = conversation.last_seq
        try:
            answer = _extract(conversation, fields, now)
        except LlmUnavailable as failure:
            _failure_record(conversation, through_seq=through_seq, reason=failure.reason, now=now)
            if manual:
                raise ExtractionFailed(details={"reason": failure.reason}) from failure
            return None
        try:
            return _version_write(
                conversation,
                fields=fields,
                answer=answer,
                trigger=trigger,
                through_seq=through_seq,
                holder=holder,
            )
        except LeaseLost:
            logger.warning(
                "extraction lease ran out during the run; its result is dropped",
                extra={"conversation_id": str(conversation.pk)},
            )
            if manual:
                raise ExtractionInProgress() from None
            return None


def extraction_dispatch(*, now: datetime | None = None) -> dict[str, Any]:
    """Hands every conversation of the current tenant that is due to a worker (the beat job,
    every minute). Safe to repeat: a run finds nothing to do once the conversation is done."""
    from extraction.tasks import extraction_run_task

    now = now or timezone.now()
    tenant = tenant_current()
    if not tenant.extraction_enabled:
        return {"enabled": False, "dispatched": 0}
    price = extraction_price(tokens=0)
    if price > 0 and not credit_can_afford(amount=price):
        # Every run would be refused; the conversations stay due until credits arrive.
        return {"enabled": True, "dispatched": 0, "reason": "insufficient_credits"}
    idle = selectors.extraction_idle_minutes(tenant=tenant)
    due = list(
        selectors.conversations_due_for_extraction(now=now, idle_minutes=idle).values_list(
            "pk", flat=True
        )[:DISPATCH_LIMIT]
    )
    for conversation_id in due:
        extraction_run_task.delay(str(conversation_id))
    return {"enabled": True, "idle_minutes": idle, "dispatched": len(due)}
