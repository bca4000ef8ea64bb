"""Running extractions: scheduling by idleness (time-controlled through `now`), the offline
extractor, the model through the fake OpenAI server, validation, versions, credits, failures."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from billing.models import CreditLedgerEntry
from billing.selectors import credit_balance_get
from conversations.models import Contact, Conversation
from conversations.services.messages import message_receive
from extraction import selectors, services
from extraction.models import Extraction, ExtractionCursor, ExtractionField, ExtractionHealth
from extraction.services import (
    ExtractionFailed,
    ExtractionInProgress,
    NothingToExtract,
    extraction_dispatch,
    extraction_run,
)
from hub import events
from inbox.models import Notification
from tests.extraction.conftest import DEFAULT_FIELDS, conversation_with, go_quiet, lead_answer
from tests.factories import ConversationFactory
from tests.fake_openai import RESPONSES
from tests.processing.test_ai_replies import _ask as processing_ask
from tests.processing.test_ai_replies import _conversation as processing_conversation
from tests.processing.test_ai_replies import _conversation_delete as processing_conversation_delete
from tests.support import outcome_with_the_model_held

IDLE = Extraction.Trigger.IDLE
MANUAL = Extraction.Trigger.MANUAL


def _set_tenant(info, **fields) -> None:
    tenant = info.tenant
    for key, value in fields.items():
        setattr(tenant, key, value)
    tenant.save()


def _extracted(conversation: Conversation, **kwargs) -> Extraction:
    """A manual run (unless told otherwise), which must write a version."""
    kwargs.setdefault("trigger", MANUAL)
    extraction = extraction_run(conversation_id=conversation.pk, **kwargs)
    assert extraction is not None
    return extraction


def _due(now) -> list:
    return list(
        selectors.conversations_due_for_extraction(now=now, idle_minutes=10).values_list(
            "pk", flat=True
        )
    )


def test_every_tenant_starts_with_the_default_lead_schema(tenant_a, tenant_b) -> None:
    for info in (tenant_a, tenant_b):
        with info.schema():
            assert list(ExtractionField.objects.values_list("name", flat=True)) == DEFAULT_FIELDS
            intent = ExtractionField.objects.get(name="intent")
            assert intent.type == "enum"
            assert "purchase" in intent.enum_values


def test_offline_extractor_finds_email_phone_and_name(tenant_a) -> None:
    with tenant_a.schema():
        conversation = conversation_with(
            "Hi! My name is Maria Lopez and I'd like a quote.",
            "Write to maria.lopez@Example.COM or call +1 (415) 555-2671",
            replies=("Thanks Maria, what's your budget?",),
        )
        balance = credit_balance_get()
        extraction = _extracted(conversation)
        assert extraction.source == "rules"
        assert extraction.data == {
            "name": "Maria Lopez",
            "email": "maria.lopez@example.com",
            "phone": "+14155552671",
        }
        assert sorted(extraction.confirmed) == ["email", "name", "phone"]
        assert extraction.version == 1
        assert extraction.through_seq == conversation.last_seq
        assert extraction.changes["added"] == extraction.data
        # Charged once, under a key of its own.
        assert extraction.credits == 1
        assert credit_balance_get() == balance - 1
        entry = CreditLedgerEntry.objects.get(idempotency_key=f"extraction:{extraction.pk}")
        assert entry.amount == -1


def test_offline_extractor_leaves_what_it_cannot_find(tenant_a) -> None:
    with tenant_a.schema():
        conversation = conversation_with("I'm interested in your product, call me 12345")
        extraction = _extracted(conversation)
        # "I'm interested" is no name, and 12345 no phone number.
        assert extraction.data == {}


def test_a_conversation_is_due_only_once_quiet_for_the_idle_time(tenant_a) -> None:
    with tenant_a.schema():
        conversation = conversation_with("my email is a@example.com")
        now = timezone.now()
        go_quiet(conversation, minutes=9, now=now)
        assert conversation.pk not in _due(now)
        assert extraction_run(conversation_id=conversation.pk, trigger=IDLE, now=now) is None
        later = now + timedelta(minutes=1)
        assert conversation.pk in _due(later)
        first = extraction_run(conversation_id=conversation.pk, trigger=IDLE, now=later)
        assert first is not None
        assert first.trigger == "idle"
        # Nothing new: never extracted twice, however often it is asked.
        assert conversation.pk not in _due(later + timedelta(hours=1))
        again = extraction_run(
            conversation_id=conversation.pk, trigger=IDLE, now=later + timedelta(hours=1)
        )
        assert again is None
        assert Extraction.objects.filter(conversation=conversation).count() == 1


def test_new_messages_make_a_new_version_with_what_changed(tenant_a) -> None:
    with tenant_a.schema():
        conversation = conversation_with("my email is old@example.com, I am Ann Lee")
        now = timezone.now() + timedelta(minutes=11)
        first = _extracted(conversation, trigger=IDLE, now=now)
        message_receive(
            conversation=conversation,
            contact=conversation.contact,
            content={"type": "text", "text": "sorry, new@example.com, phone +44 7911 123456"},
        )
        # Just written to: not quiet yet.
        assert extraction_run(conversation_id=conversation.pk, trigger=IDLE) is None
        later = timezone.now() + timedelta(minutes=11)
        second = _extracted(conversation, trigger=IDLE, now=later)
        assert (first.version, second.version) == (1, 2)
        assert second.data["email"] == "new@example.com"
        assert second.changes == {
            "added": {"phone": "+447911123456"},
            "changed": {"email": {"from": "old@example.com", "to": "new@example.com"}},
            "removed": {},
        }


def test_the_tenant_chooses_its_idle_time_and_can_switch_extraction_off(tenant_a) -> None:
    with tenant_a.schema():
        conversation = conversation_with("a@example.com")
        now = timezone.now()
        go_quiet(conversation, minutes=6, now=now)
    _set_tenant(tenant_a, extraction_idle_minutes=5)
    with tenant_a.schema():
        tenant = tenant_a.tenant
        assert selectors.extraction_idle_minutes(tenant=tenant) == 5
        assert extraction_run(conversation_id=conversation.pk, trigger=IDLE, now=now) is not None
    _set_tenant(tenant_a, extraction_idle_minutes=None)
    assert selectors.extraction_idle_minutes(tenant=tenant_a.tenant) == 10
    _set_tenant(tenant_a, extraction_enabled=False)
    with tenant_a.schema():
        other = conversation_with("b@example.com")
        go_quiet(other, minutes=60, now=now)
        assert extraction_dispatch(now=now) == {"enabled": False, "dispatched": 0}
        assert extraction_run(conversation_id=other.pk, trigger=IDLE, now=now) is None
        # The switch stops the schedule, not an operator asking.
        assert extraction_run(conversation_id=other.pk, trigger=MANUAL, now=now) is not None


def test_dispatch_hands_due_conversations_of_its_own_tenant_to_workers(
    tenant_a, tenant_b, monkeypatch
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(
        "extraction.tasks.extraction_run_task.delay",
        lambda conversation_id: sent.append(conversation_id),
    )
    now = timezone.now()
    with tenant_b.schema():
        foreign = conversation_with("b@example.com")
        go_quiet(foreign, minutes=30, now=now)
    with tenant_a.schema():
        quiet = conversation_with("a@example.com")
        go_quiet(quiet, minutes=30, now=now)
        busy = conversation_with("c@example.com")
        go_quiet(busy, minutes=2, now=now)
        assert extraction_dispatch(now=now) == {
            "enabled": True,
            "idle_minutes": 10,
            "dispatched": 1,
        }
    assert sent == [str(quiet.pk)]
    with tenant_b.schema():
        # The other tenant's conversation was neither dispatched nor run.
        assert not Extraction.objects.exists()


def test_extraction_through_the_model_validates_every_value(tenant_a, openai_fake) -> None:
    openai_fake.structured = lead_answer(
        name=("Ana Souza", True),
        email=("not-an-email", True),
        phone=("(415) 555-2671", True),
        company=("Acme Ltd", False),
        budget=("5,000", True),
        intent=("QUOTE", True),
        timeline=("next month", False),
    )
    with tenant_a.schema():
        conversation = conversation_with("Hello, Ana from Acme here; we need a quote")
        extraction = _extracted(conversation)
    assert extraction.source == "llm"
    assert extraction.data == {
        "name": "Ana Souza",
        "company": "Acme Ltd",
        "budget": 5000,
        "intent": "quote",
        "timeline": "next month",
    }
    assert sorted(extraction.confirmed) == ["budget", "intent", "name"]
    assert {(d["field"], d["reason"]) for d in extraction.dropped} == {
        ("email", "not a valid email address"),
        # No country code, and no default region to assume one.
        ("phone", "not a phone number with a country code"),
    }
    assert extraction.tokens == 30
    [request] = openai_fake.requests_to("/v1/responses")
    body = request.json()
    assert body["store"] is False
    text_format = body["text"]["format"]
    assert (text_format["type"], text_format["name"], text_format["strict"]) == (
        "json_schema",
        "lead",
        True,
    )
    schema = text_format["schema"]
    assert schema["required"] == DEFAULT_FIELDS
    assert schema["additionalProperties"] is False
    assert schema["properties"]["intent"]["properties"]["value"]["enum"][-1] is None
    assert "Customer: Hello, Ana from Acme here" in body["input"]


def test_phone_numbers_take_the_default_region_and_dates_must_be_dates(
    tenant_a, openai_fake, settings
) -> None:
    settings.HUB_EXTRACTION_DEFAULT_REGION = "us"
    with tenant_a.schema():
        ExtractionField.objects.create(name="visit_on", type="date")
        ExtractionField.objects.create(name="wants_call", type="boolean")
        openai_fake.structured = {
            **lead_answer(phone=("(415) 555-2671", True)),
            "visit_on": {"value": "2025-02-30", "confirmed": True},
            "wants_call": {"value": "yes", "confirmed": True},
        }
        conversation = conversation_with("call me")
        extraction = _extracted(conversation)
    assert extraction.data == {"phone": "+14155552671", "wants_call": True}
    assert extraction.dropped == [
        {"field": "visit_on", "value": "2025-02-30", "reason": "not a calendar date"}
    ]


def test_a_malformed_answer_is_a_failure_retried_with_backoff(tenant_a, openai_fake) -> None:
    openai_fake.structured = "this is not json"
    now = timezone.now()
    with tenant_a.schema():
        conversation = conversation_with("hello")
        go_quiet(conversation, minutes=11, now=now)
        assert extraction_run(conversation_id=conversation.pk, trigger=IDLE, now=now) is None
        cursor = ExtractionCursor.objects.get(conversation=conversation)
        assert (cursor.attempts, cursor.last_error) == (1, "invalid_output")
        assert cursor.next_attempt_at is not None
        assert now + timedelta(seconds=30) <= cursor.next_attempt_at <= now + timedelta(seconds=60)
        assert not Extraction.objects.exists()
        # Backing off: not due until the retry time has passed.
        assert conversation.pk not in _due(now + timedelta(seconds=29))
        assert conversation.pk in _due(now + timedelta(seconds=61))
        with pytest.raises(ExtractionFailed) as failed:
            extraction_run(conversation_id=conversation.pk, trigger=MANUAL, now=now)
        assert failed.value.details == {"reason": "invalid_output"}
        cursor.refresh_from_db()
        assert cursor.attempts == 2
        assert cursor.next_attempt_at is not None
        assert cursor.next_attempt_at >= now + timedelta(seconds=60)
        openai_fake.structured = lead_answer(name=("Bo", True))
        later = now + timedelta(hours=2)
        assert extraction_run(conversation_id=conversation.pk, trigger=IDLE, now=later)
        cursor.refresh_from_db()
        assert (cursor.attempts, cursor.next_attempt_at, cursor.extracted_seq) == (0, None, 1)


def test_a_conversation_that_keeps_failing_waits_for_a_new_message(
    tenant_a, openai_fake, settings
) -> None:
    settings.HUB_EXTRACTION_MAX_ATTEMPTS = 2
    openai_fake.fail(RESPONSES, 400, times=10, code="invalid_request")
    now = timezone.now()
    with tenant_a.schema():
        conversation = conversation_with("hello")
        go_quiet(conversation, minutes=11, now=now)
        extraction_run(conversation_id=conversation.pk, trigger=IDLE, now=now)
        later = now + timedelta(hours=3)
        extraction_run(conversation_id=conversation.pk, trigger=IDLE, now=later)
        assert ExtractionCursor.objects.get(conversation=conversation).attempts == 2
        assert conversation.pk not in _due(later + timedelta(days=1))
        message_receive(
            conversation=conversation,
            contact=conversation.contact,
            content={"type": "text", "text": "anyone?"},
        )
        go_quiet(conversation, minutes=11, now=later)
        assert conversation.pk in _due(later + timedelta(hours=3))


def test_three_failures_in_a_row_notify_the_operators_once(tenant_a, openai_fake) -> None:
    openai_fake.structured = "{"
    now = timezone.now()
    with tenant_a.schema():
        conversations = [conversation_with(f"hello {n}") for n in range(4)]
        for conversation in conversations[:2]:
            with pytest.raises(ExtractionFailed):
                extraction_run(conversation_id=conversation.pk, trigger=MANUAL, now=now)
        assert not Notification.objects.filter(kind="extraction_failing").exists()
        for conversation in conversations[2:]:
            with pytest.raises(ExtractionFailed):
                extraction_run(conversation_id=conversation.pk, trigger=MANUAL, now=now)
        [notification] = Notification.objects.filter(kind="extraction_failing")
        assert "4" not in notification.body
        assert ExtractionHealth.objects.get().consecutive_failures == 4
        # A success ends the streak; the next streak notifies again.
        openai_fake.structured = lead_answer()
        extraction_run(conversation_id=conversations[0].pk, trigger=MANUAL, now=now)
        health = ExtractionHealth.objects.get()
        assert (health.consecutive_failures, health.notified_at) == (0, None)


def test_a_tenant_without_credits_is_not_extracted(tenant_a, settings) -> None:
    settings.HUB_CREDITS_PER_EXTRACTION = 10_000
    now = timezone.now()
    with tenant_a.schema():
        conversation = conversation_with("a@example.com")
        go_quiet(conversation, minutes=30, now=now)
        assert extraction_run(conversation_id=conversation.pk, trigger=IDLE, now=now) is None
        with pytest.raises(services.InsufficientCredits):
            extraction_run(conversation_id=conversation.pk, trigger=MANUAL, now=now)
        assert not Extraction.objects.exists()


def test_the_price_adds_the_tokens(tenant_a, openai_fake, settings) -> None:
    settings.HUB_CREDITS_PER_1K_TOKENS = 100
    openai_fake.structured = lead_answer()
    with tenant_a.schema():
        conversation = conversation_with("hi")
        extraction = _extracted(conversation)
        # 1 per extraction + 30 tokens at 100 per thousand, rounded up.
        assert extraction.credits == 4


def test_confirmed_fields_update_the_contact_when_the_tenant_asks(tenant_a, openai_fake) -> None:
    openai_fake.structured = lead_answer(
        email=("ann@example.com", True), company=("Acme", True), budget=(900, False)
    )
    with tenant_a.schema():
        conversation = conversation_with("hi")
        Contact.objects.filter(pk=conversation.contact_id).update(attributes={"vip": True})
        extraction_run(conversation_id=conversation.pk, trigger=MANUAL)
        contact = Contact.objects.get(pk=conversation.contact_id)
        assert (contact.email, contact.attributes) == ("", {"vip": True})
    _set_tenant(tenant_a, extraction_updates_contact=True)
    with tenant_a.schema():
        extraction_run(conversation_id=conversation.pk, trigger=MANUAL)
        contact.refresh_from_db()
        assert contact.email == "ann@example.com"
        # Unconfirmed values (the budget) stay out of the contact.
        assert contact.attributes == {"vip": True, "email": "ann@example.com", "company": "Acme"}
        # An erased contact is never filled again.
        Contact.objects.filter(pk=contact.pk).update(
            email="", attributes={}, erased_at=timezone.now()
        )
        extraction_run(conversation_id=conversation.pk, trigger=MANUAL)
        contact.refresh_from_db()
        assert (contact.email, contact.attributes) == ("", {})


def test_each_version_is_published_as_lead_extracted(
    tenant_a, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    published: list[tuple[str, str, dict]] = []
    monkeypatch.setattr(events, "_subscribers", [lambda *event: published.append(event)])
    with tenant_a.schema():
        conversation = conversation_with("I'm Zoe Park")
        with django_capture_on_commit_callbacks(execute=True):
            extraction = _extracted(conversation)
    [(schema, name, payload)] = [event for event in published if event[1] == "lead.extracted"]
    assert (schema, name) == (tenant_a.slug, "lead.extracted")
    assert payload["id"] == str(extraction.pk)
    assert payload["data"] == {"name": "Zoe Park"}
    assert payload["conversation"] == str(conversation.pk)
    assert payload["channel"] == str(conversation.channel_id)
    json.dumps(payload)  # what outgoing webhooks send


def test_a_conversation_without_messages_has_nothing_to_extract(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        with pytest.raises(NothingToExtract):
            extraction_run(conversation_id=conversation.pk, trigger=MANUAL)
        assert not Conversation.objects.get(pk=conversation.pk).extractions.exists()


def test_dispatch_waits_for_credits(tenant_a, settings, monkeypatch) -> None:
    sent: list[str] = []
    monkeypatch.setattr("extraction.tasks.extraction_run_task.delay", sent.append)
    settings.HUB_CREDITS_PER_EXTRACTION = 10_000
    now = timezone.now()
    with tenant_a.schema():
        go_quiet(conversation_with("a@example.com"), minutes=30, now=now)
        assert extraction_dispatch(now=now)["reason"] == "insufficient_credits"
    assert sent == []


def test_a_run_under_way_keeps_others_out_until_its_lease_runs_out(tenant_a) -> None:
    with tenant_a.schema():
        conversation = conversation_with("I'm Ann, ann@example.com")
        go_quiet(conversation, minutes=30)
        other = uuid.uuid4()
        ExtractionCursor.objects.create(
            conversation=conversation,
            held_by=other,
            held_until=timezone.now() + timedelta(minutes=1),
        )
        with pytest.raises(ExtractionInProgress):
            extraction_run(conversation_id=conversation.pk, trigger=MANUAL)
        assert extraction_run(conversation_id=conversation.pk, trigger=IDLE) is None
        assert not Extraction.objects.filter(conversation=conversation).exists()
        assert ExtractionCursor.objects.get(conversation=conversation).held_by == other

        # The run holding it died: once its lease has run out, the next run goes ahead and
        # gives the conversation up after.
        ExtractionCursor.objects.filter(conversation=conversation).update(
            held_until=timezone.now() - timedelta(seconds=1)
        )
        assert _extracted(conversation, trigger=IDLE).data["email"] == "ann@example.com"
        cursor = ExtractionCursor.objects.get(conversation=conversation)
        assert (cursor.held_by, cursor.held_until) == (None, None)


def test_a_run_whose_lease_ran_out_meanwhile_writes_nothing(committed_db, openai_fake) -> None:
    """The model outlasted the run's lease and another run took the conversation: the late
    run's version is not written (nor charged), and an operator asking is told one is under
    way."""
    slug = committed_db["a"].slug
    openai_fake.structured = lead_answer(name=("Ann", True))
    with schema_context(slug):
        conversation = processing_conversation()
        processing_ask(conversation, "I'm Ann")
    successor = uuid.uuid4()

    def lease_taken_over() -> None:
        ExtractionCursor.objects.filter(conversation=conversation).update(
            held_by=successor, held_until=timezone.now() + timedelta(minutes=1)
        )

    try:
        outcome = outcome_with_the_model_held(
            openai_fake,
            RESPONSES,
            schema=slug,
            work=lambda: extraction_run(conversation_id=conversation.pk, trigger=MANUAL),
            meanwhile=lease_taken_over,
        )
        assert isinstance(outcome, ExtractionInProgress)
        with schema_context(slug):
            assert not Extraction.objects.filter(conversation=conversation).exists()
            cursor = ExtractionCursor.objects.get(conversation=conversation)
            assert (cursor.extracted_seq, cursor.held_by) == (0, successor)
    finally:
        with schema_context(slug):
            processing_conversation_delete(conversation)
