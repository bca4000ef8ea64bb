"""The whole chain through a real worker on real Redis: the per-minute job dispatches a quiet
conversation, and its extraction runs in its own tenant's schema, never the other's."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Contact, Conversation
from extraction.models import Extraction, ExtractionCursor
from jobs.models import JobRun
from jobs.tasks import job_run_task
from tests import support
from tests.extraction.conftest import conversation_with


def _cleanup(slug: str, conversation: Conversation) -> None:
    with schema_context(slug):
        Extraction.objects.filter(conversation=conversation).delete()
        ExtractionCursor.objects.filter(conversation=conversation).delete()
        JobRun.objects.filter(job="extraction.dispatch").delete()
        conversation.messages.all().delete()
        conversation.participants.all().delete()
        conversation.delete()
        Contact.objects.filter(pk=conversation.contact_id).delete()
        conversation.channel.delete()


def test_the_job_extracts_quiet_conversations_in_their_own_tenant(committed_db, worker) -> None:
    a, b = committed_db["a"].slug, committed_db["b"].slug
    with schema_context(a):
        quiet = conversation_with("Hello, I'm Nora Quinn: nora@example.com")
        Conversation.objects.filter(pk=quiet.pk).update(
            last_activity_at=timezone.now() - timedelta(minutes=30)
        )
    with schema_context(b):
        other = conversation_with("I'm Otto Berg, otto@example.com")
        Conversation.objects.filter(pk=other.pk).update(
            last_activity_at=timezone.now() - timedelta(minutes=30)
        )
    try:
        with schema_context(a):
            job_run_task.delay("extraction.dispatch")

        def extracted() -> list[Extraction]:
            with schema_context(a):
                return list(Extraction.objects.filter(conversation=quiet))

        [extraction] = support.wait_until(extracted, timeout=60, what="the extraction in A")
        assert extraction.data == {"name": "Nora Quinn", "email": "nora@example.com"}
        assert extraction.trigger == "idle"
        with schema_context(b):
            # B's quiet conversation waits for B's own dispatch.
            assert not Extraction.objects.exists()
    finally:
        _cleanup(a, quiet)
        _cleanup(b, other)
