"""The lease a worker holds on the conversation it answers (processing/services.py): taken
before its first message is read, given up with the last, run out when its holder died, and
checked in the transaction that writes each answer."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Message
from processing.models import ConversationCursor
from processing.services import ConversationBusy, conversation_drain
from tests.fake_openai import RESPONSES, FakeOpenAI
from tests.processing.test_ai_replies import _ask, _conversation, _conversation_delete
from tests.support import outcome_with_the_model_held


def _answers(conversation_id: uuid.UUID) -> list[str]:
    replies = Message.objects.filter(conversation_id=conversation_id, sender_type="ai")
    return [reply.content["text"] for reply in replies.order_by("seq")]


def _lease_of(conversation_id: uuid.UUID) -> ConversationCursor:
    return ConversationCursor.objects.get(conversation_id=conversation_id)


def test_a_live_lease_keeps_others_out_and_one_run_out_is_taken_over(
    tenant_a, openai_fake: FakeOpenAI
) -> None:
    openai_fake.reply_text = "Answered."
    with tenant_a.schema():
        conversation = _conversation()
        _ask(conversation, "Anyone there?")
        other = uuid.uuid4()
        ConversationCursor.objects.create(
            conversation=conversation,
            held_by=other,
            held_until=timezone.now() + timedelta(minutes=1),
        )
        with pytest.raises(ConversationBusy):
            conversation_drain(conversation_id=conversation.pk)
        assert _answers(conversation.pk) == []
        assert _lease_of(conversation.pk).held_by == other

        # Its holder died: once the lease has run out, the next drain takes the conversation
        # over, answers, and gives it up.
        ConversationCursor.objects.filter(conversation=conversation).update(
            held_until=timezone.now() - timedelta(seconds=1)
        )
        assert conversation_drain(conversation_id=conversation.pk) == 1
        assert _answers(conversation.pk) == ["Answered."]
        lease = _lease_of(conversation.pk)
        assert (lease.processed_seq, lease.held_by, lease.held_until) == (1, None, None)


def test_the_lease_is_given_up_when_there_is_nothing_to_answer(tenant_a, openai_fake) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        assert conversation_drain(conversation_id=conversation.pk) == 0
        lease = _lease_of(conversation.pk)
        assert (lease.processed_seq, lease.held_by, lease.held_until) == (0, None, None)
        _ask(conversation, "Now?")
        assert conversation_drain(conversation_id=conversation.pk) == 1
        assert _lease_of(conversation.pk).held_by is None


def test_an_answer_whose_lease_ran_out_meanwhile_is_not_written(
    committed_db, openai_fake: FakeOpenAI
) -> None:
    """A worker whose model outlasted its lease finds another holder when it comes to write:
    its answer is rolled back and the message left to the holder, so none is answered twice."""
    slug = committed_db["a"].slug
    openai_fake.reply_text = "Too late."
    with schema_context(slug):
        conversation = _conversation()
        _ask(conversation, "Still there?")
    successor = uuid.uuid4()

    def lease_taken_over() -> None:
        lease = _lease_of(conversation.pk)
        assert lease.held_until is not None
        assert lease.held_until > timezone.now()
        # The lease ran out and another worker took it while the model was answering.
        ConversationCursor.objects.filter(conversation=conversation).update(
            held_by=successor, held_until=timezone.now() + timedelta(minutes=1)
        )

    try:
        processed = outcome_with_the_model_held(
            openai_fake,
            RESPONSES,
            schema=slug,
            work=lambda: conversation_drain(conversation_id=conversation.pk),
            meanwhile=lease_taken_over,
        )
        assert processed == 0
        with schema_context(slug):
            assert _answers(conversation.pk) == []
            lease = _lease_of(conversation.pk)
            assert (lease.processed_seq, lease.held_by) == (0, successor)
    finally:
        with schema_context(slug):
            _conversation_delete(conversation)
