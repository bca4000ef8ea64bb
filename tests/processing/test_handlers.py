"""The handlers end to end: a contact's message on a web-chat channel whose agent exists,
routed by a routing rule, drained by processing, answered (and billed or not) as each handler
promises. The LLM, where one is configured, is the fake OpenAI server."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Agent, LlmCall
from automation.models import AssessmentFlow, AssessmentRun, CsatRating, Reminder, Task
from automation.selectors import conversation_sticky_handler
from automation.services import assessment_start, reminders_deliver_due
from channels_app.models import Channel, ChannelKind
from conversations.models import Contact, Conversation, Message
from conversations.services.messages import message_receive, message_send
from inbox.models import Notification
from knowledge.services import knowledge_chunks_embed, knowledge_document_create
from processing import services
from processing.handlers import HANDLERS, HandlerContext, Route
from processing.models import ReplyCharge, RoutingRule
from processing.services import conversation_drain
from tests.factories import AgentFactory, OperatorFactory
from tests.fake_openai import RESPONSES

REFUND_POLICY = (
    "Orders can be returned within 30 days of delivery. Refunds are paid to the original "
    "payment method within five working days of the parcel reaching our warehouse.\n\n"
    "Shipping costs are not refunded unless the item arrived damaged."
)


def _conversation(**agent_fields: Any) -> Conversation:
    agent = AgentFactory.create(name="Ada", **agent_fields)
    channel = Channel.objects.create(
        kind=ChannelKind.WEBCHAT,
        name="Site chat",
        agent=agent,
        config={"allowed_origins": ["http://testserver"]},
    )
    contact = Contact.objects.create(name="Visitor")
    return Conversation.objects.create(channel=channel, contact=contact)


def _route(handler: str, *, keywords: list[str] | None = None, pattern: str = "") -> RoutingRule:
    return RoutingRule.objects.create(
        name=f"to {handler}", priority=10, keywords=keywords or [], pattern=pattern, handler=handler
    )


def _say(conversation: Conversation, content: dict[str, Any] | str) -> Message:
    if isinstance(content, str):
        content = {"type": "text", "text": content}
    message, _ = message_receive(
        conversation=conversation, contact=conversation.contact, content=content
    )
    return message


def _ask(conversation: Conversation, content: dict[str, Any] | str) -> list[Message]:
    """Says it, drains the conversation, and returns the AI's replies to it."""
    message = _say(conversation, content)
    conversation_drain(conversation_id=conversation.pk)
    return _replies_to(message)


def _replies_to(message: Message) -> list[Message]:
    return list(
        Message.objects.filter(
            conversation_id=message.conversation_id,
            sender_type="ai",
            client_id__startswith=f"reply:{message.pk}",
        ).order_by("seq")
    )


def _ask_once_failing(
    conversation: Conversation, text: str, monkeypatch: pytest.MonkeyPatch
) -> Message:
    """Says it and drains the conversation, the write of the answer failing (the database lost
    at that moment, say): what the drain wrote before it stays as the failure left it."""
    real = services._send

    def lost(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(services, "_send", real)
        raise DatabaseError("connection lost")

    monkeypatch.setattr(services, "_send", lost)
    message = _say(conversation, text)
    with pytest.raises(DatabaseError):
        conversation_drain(conversation_id=conversation.pk)
    assert _replies_to(message) == []
    return message


def _texts(replies: list[Message]) -> list[str]:
    return [reply.content.get("text", "") for reply in replies]


def _charged(reply: Message) -> ReplyCharge | None:
    return ReplyCharge.objects.filter(message=reply).first()


def test_every_handler_is_registered() -> None:
    assert {"qna", "small_talk", "feedback", "reminder", "task", "assessment"} <= set(HANDLERS)


# --- qna -----------------------------------------------------------------------------------


def test_qna_answers_from_a_document_and_cites_it_without_an_llm(tenant_a) -> None:
    with tenant_a.schema():
        knowledge_document_create(
            title="Refund policy", body=REFUND_POLICY, source_url="https://shop.test/refunds"
        )
        knowledge_document_create(title="Opening hours", body="We open at nine on weekdays.")
        conversation = _conversation()
        _route("qna", keywords=["refund", "return"])
        (reply,) = _ask(conversation, "How long does a refund take?")
        text = reply.content["text"]
        assert "five working days" in text
        assert text.endswith("Source: Refund policy (https://shop.test/refunds)")
        assert "nine" not in text
        # An answer from the documents is an AI reply, priced as one.
        assert _charged(reply) is not None
        conversation.refresh_from_db()
        assert conversation.ai_active


def test_qna_with_the_llm_answers_from_the_passages_by_full_text(
    tenant_a, openai_fake, settings
) -> None:
    settings.HUB_KNOWLEDGE_VECTOR_SEARCH = False
    openai_fake.reply_text = "Refunds take up to five working days."
    with tenant_a.schema():
        knowledge_document_create(title="Refund policy", body=REFUND_POLICY)
        conversation = _conversation()
        _route("qna", keywords=["refund"])
        (reply,) = _ask(conversation, "When do I get my refund?")
        assert reply.content["text"] == (
            "Refunds take up to five working days.\n\nSource: Refund policy"
        )
        charge = _charged(reply)
        assert charge is not None
        assert charge.tokens == 30
    (request,) = openai_fake.requests_to("/v1/responses")
    instructions = request.json()["instructions"]
    assert "using only the numbered sources" in instructions
    assert "[1] Refund policy" in instructions
    assert "original payment method" in instructions
    assert not openai_fake.requests_to("/v1/embeddings")


def test_qna_finds_the_passage_by_embedding_where_pgvector_is(
    tenant_a, openai_fake, settings
) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        if cursor.fetchone() is None:
            pytest.skip("pgvector is not installed in this database (the embedded server has it)")
    settings.HUB_KNOWLEDGE_MIN_SIMILARITY = 0.1
    openai_fake.reply_text = "To the original payment method."
    with tenant_a.schema():
        knowledge_document_create(
            title="Refund policy", body=REFUND_POLICY, source_url="https://shop.test/refunds"
        )
        knowledge_document_create(title="Opening hours", body="We open at nine on weekdays.")
        assert knowledge_chunks_embed(limit=10) == 2
        conversation = _conversation()
        _route("qna", keywords=["reimbursed"])
        (reply,) = _ask(conversation, "Which payment method is reimbursed?")
        assert reply.content["text"] == (
            "To the original payment method.\n\nSource: Refund policy (https://shop.test/refunds)"
        )
    question = openai_fake.requests_to("/v1/embeddings")[-1].json()["input"]
    assert question == ["Which payment method is reimbursed?"]
    instructions = openai_fake.requests_to("/v1/responses")[-1].json()["instructions"]
    assert instructions.index("[1] Refund policy") < instructions.index("five working days")


def test_qna_falls_back_to_quoting_when_the_llm_fails(tenant_a, openai_fake, settings) -> None:
    settings.HUB_KNOWLEDGE_VECTOR_SEARCH = False
    openai_fake.fail(RESPONSES, 500, times=10)
    with tenant_a.schema():
        knowledge_document_create(title="Refund policy", body=REFUND_POLICY)
        conversation = _conversation()
        _route("qna", keywords=["refund"])
        (reply,) = _ask(conversation, "How long does a refund take?")
        assert "five working days" in reply.content["text"]
        assert reply.content["text"].endswith("Source: Refund policy")


def test_qna_without_a_matching_document_hands_off_free(tenant_a) -> None:
    with tenant_a.schema():
        knowledge_document_create(title="Opening hours", body="We open at nine on weekdays.")
        conversation = _conversation()
        _route("qna", keywords=["warranty"])
        (reply,) = _ask(conversation, "Is there a warranty on the blender?")
        assert "couldn't find that in our documents" in reply.content["text"]
        assert _charged(reply) is None
        conversation.refresh_from_db()
        assert (conversation.ai_active, conversation.status) == (False, "pending")


# --- small_talk ----------------------------------------------------------------------------


def test_small_talk_without_an_llm_introduces_the_agent_free(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        _route("small_talk", keywords=["hello", "thanks"])
        (hello,) = _ask(conversation, "Hello there")
        (thanks,) = _ask(conversation, "thanks!")
        assert hello.content["text"] == "Hi! I'm Ada. How can I help you today?"
        assert thanks.content["text"].startswith("You're welcome")
        assert _charged(hello) is None


def test_small_talk_speaks_in_the_agent_language_without_an_llm(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation(language="pt-BR")
        _route("small_talk", keywords=["olá"])
        (reply,) = _ask(conversation, "Olá!")
        assert reply.content["text"] == "Olá! Sou Ada. Como posso ajudar?"


def test_small_talk_with_the_llm_uses_the_persona_and_is_billed(tenant_a, openai_fake) -> None:
    openai_fake.reply_text = "Ahoy! Doing grand. What can I do for ye?"
    with tenant_a.schema():
        conversation = _conversation(persona="A cheerful pirate.")
        _route("small_talk", keywords=["how are you"])
        (reply,) = _ask(conversation, "how are you?")
        assert reply.content["text"] == "Ahoy! Doing grand. What can I do for ye?"
        assert _charged(reply) is not None
    instructions = openai_fake.requests_to("/v1/responses")[-1].json()["instructions"]
    assert "Persona and tone: A cheerful pirate." in instructions
    assert "small talk" in instructions


# --- feedback ------------------------------------------------------------------------------


def test_feedback_stores_a_typed_rating_as_csat(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        _route("feedback", pattern=r"^\s*[1-5](\s*/\s*5)?\s*$")
        (reply,) = _ask(conversation, "4/5")
        rating = CsatRating.objects.get(conversation=conversation)
        assert (rating.score, rating.sentiment, rating.raw) == (4, "positive", "4/5")
        assert rating.contact_id == conversation.contact_id
        assert reply.content["text"] == "Thank you for your rating!"
        assert _charged(reply) is None


def test_a_poor_rating_apologises_and_hands_off(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        _route("feedback", pattern=r"^\s*[1-5]\s*$")
        (reply, *_) = _ask(conversation, "1")
        assert CsatRating.objects.get(conversation=conversation).sentiment == "negative"
        assert "sorry we fell short" in reply.content["text"]
        conversation.refresh_from_db()
        assert conversation.status == "pending"
        assert not conversation.ai_active


def test_a_reaction_on_an_ai_message_rates_it_silently(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        _route("feedback", pattern="👍|👎|❤")
        answer, _ = message_send(
            conversation=conversation,
            content={"type": "text", "text": "Your order ships today."},
            sender_type="ai",
        )
        replies = _ask(
            conversation, {"type": "reaction", "emoji": "👍", "message_id": str(answer.pk)}
        )
        assert replies == []
        rating = CsatRating.objects.get(rated_message=answer)
        assert (rating.score, rating.sentiment) == (5, "positive")
        # A changed reaction replaces the rating; none is added.
        _ask(conversation, {"type": "reaction", "emoji": "👎", "message_id": str(answer.pk)})
        assert CsatRating.objects.filter(conversation=conversation).count() == 1
        assert CsatRating.objects.get(rated_message=answer).sentiment == "negative"
        # A removed reaction withdraws it.
        reaction = _say(
            conversation, {"type": "reaction", "emoji": "", "message_id": str(answer.pk)}
        )
        HANDLERS["feedback"](_context(conversation, reaction, "feedback"))
        assert not CsatRating.objects.filter(conversation=conversation).exists()


def test_a_reaction_on_a_contact_message_rates_nothing(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        own = _say(conversation, "hi")
        reaction = _say(
            conversation, {"type": "reaction", "emoji": "👍", "message_id": str(own.pk)}
        )
        result = HANDLERS["feedback"](_context(conversation, reaction, "feedback"))
        assert result.replies == []
        assert not CsatRating.objects.exists()


def _context(conversation: Conversation, message: Message, handler: str) -> HandlerContext:
    message.refresh_from_db()
    return HandlerContext(
        message=message,
        conversation=conversation,
        agent=conversation.channel.agent or Agent(),
        text=message.text or message.content.get("emoji", ""),
        route=Route(handler=handler),
    )


# --- reminder ------------------------------------------------------------------------------


def test_a_reminder_is_set_in_plain_language_and_delivered_on_the_channel(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        _route("reminder", keywords=["remind me", "reminders"])
        before = timezone.now()
        (reply,) = _ask(conversation, "Remind me to call Ana in 10 minutes")
        reminder = Reminder.objects.get(conversation=conversation)
        assert reminder.text == "call Ana"
        expected = before + datetime.timedelta(minutes=10)
        assert abs((reminder.due_at - expected).total_seconds()) < 60
        assert reply.content["text"].startswith("Okay, I'll remind you to call Ana on ")
        assert "(UTC)" in reply.content["text"]
        assert _charged(reply) is None
        # Not due yet: the job delivers nothing.
        assert reminders_deliver_due() == {"delivered": 0}
        # Ten minutes later (the clock moved by moving the reminder).
        Reminder.objects.filter(pk=reminder.pk).update(
            due_at=timezone.now() - datetime.timedelta(seconds=1)
        )
        assert reminders_deliver_due() == {"delivered": 1}
        assert reminders_deliver_due() == {"delivered": 0}
        reminder.refresh_from_db()
        delivered = reminder.delivered_message
        assert reminder.status == "delivered"
        assert delivered is not None
        assert delivered.content == {"type": "text", "text": "⏰ Reminder: call Ana"}
        assert (delivered.conversation_id, delivered.channel_id) == (
            conversation.pk,
            conversation.channel_id,
        )
        assert delivered.direction == "out"
        # On the web chat, sent once recorded (elsewhere the delivery task sends it).
        assert delivered.status == "sent"


def test_reminders_are_listed_snoozed_and_cancelled(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        _route("reminder", keywords=["remind me", "reminders", "reminder", "snooze"])
        _ask(conversation, "remind me tomorrow at 9 to pay the rent")
        _ask(conversation, "remind me in 2 hours to water the plants")
        (listing,) = _ask(conversation, "what are my reminders?")
        lines = listing.content["text"].splitlines()
        assert lines[0] == "Your reminders:"
        assert lines[1].startswith("• water the plants")
        assert lines[2].startswith("• pay the rent")
        assert "at 09:00 (UTC)" in lines[2]
        plants = Reminder.objects.get(text="water the plants")
        due = plants.due_at
        (snoozed,) = _ask(conversation, "snooze 15 minutes")
        plants.refresh_from_db()
        assert plants.due_at == due + datetime.timedelta(minutes=15)
        assert snoozed.content["text"].startswith("Snoozed: I'll remind you “water the plants”")
        (cancelled,) = _ask(conversation, "cancel my reminder")
        # The next one due goes first.
        assert cancelled.content["text"] == "Cancelled your reminder “water the plants”."
        (all_gone,) = _ask(conversation, "cancel all my reminders")
        assert all_gone.content["text"] == "Cancelled your reminder “pay the rent”."
        assert not Reminder.objects.filter(conversation=conversation, status="scheduled").exists()
        (none_left,) = _ask(conversation, "cancel my reminder")
        assert none_left.content["text"] == "You have no reminders to cancel."


def test_a_delivered_reminder_can_be_snoozed(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        _route("reminder", keywords=["remind me", "snooze"])
        _ask(conversation, "remind me in 5 minutes to stretch")
        Reminder.objects.update(due_at=timezone.now() - datetime.timedelta(seconds=1))
        reminders_deliver_due()
        (reply,) = _ask(conversation, "snooze")
        reminder = Reminder.objects.get()
        assert reminder.status == "scheduled"
        assert reminder.snoozed == 1
        assert reminder.due_at > timezone.now() + datetime.timedelta(minutes=9)
        assert reply.content["text"].startswith("Snoozed")
        # Delivered again later, as a new message.
        Reminder.objects.update(due_at=timezone.now() - datetime.timedelta(seconds=1))
        assert reminders_deliver_due() == {"delivered": 1}
        assert (
            Message.objects.filter(
                conversation=conversation, content__text="⏰ Reminder: stretch"
            ).count()
            == 2
        )


def test_a_reminder_in_the_past_or_without_a_time_is_explained(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        _route("reminder", keywords=["remind me"])
        (vague,) = _ask(conversation, "remind me about the thing")
        assert vague.content["text"].startswith("I can set reminders for you")
        (too_far,) = _ask(conversation, "remind me in 500 weeks to renew")
        assert too_far.content["text"] == "I can only set reminders up to a year ahead."
        assert not Reminder.objects.exists()


def test_the_reminder_follows_the_contact_time_zone(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        Contact.objects.filter(pk=conversation.contact_id).update(
            attributes={"timezone": "Asia/Tokyo"}
        )
        conversation.contact.refresh_from_db()
        _route("reminder", keywords=["remind me"])
        (reply,) = _ask(conversation, "remind me tomorrow at 9 to stretch")
        due = Reminder.objects.get().due_at
        local = due.astimezone(datetime.timezone(datetime.timedelta(hours=9)))
        assert (local.hour, local.minute) == (9, 0)
        assert "(Asia/Tokyo)" in reply.content["text"]


def test_the_llm_reads_the_reminder_when_configured_and_it_is_billed(tenant_a, openai_fake) -> None:
    due = (timezone.now() + datetime.timedelta(days=2)).replace(microsecond=0, second=0)
    openai_fake.structured = {
        "action": "create",
        "text": "book the vet",
        "due_at": due.strftime("%Y-%m-%dT%H:%M"),
        "snooze_minutes": 0,
        "all": False,
    }
    with tenant_a.schema():
        conversation = _conversation()
        _route("reminder", keywords=["nudge me"])
        (reply,) = _ask(conversation, "nudge me the day after tomorrow about the vet")
        reminder = Reminder.objects.get()
        assert (reminder.text, reminder.due_at) == ("book the vet", due)
        assert "book the vet" in reply.content["text"]
        charge = _charged(reply)
        assert charge is not None
        assert charge.tokens == 30
        assert LlmCall.objects.filter(purpose="extraction").count() == 1
    schema = openai_fake.requests_to("/v1/responses")[-1].json()["text"]["format"]
    assert schema["name"] == "reminder_request"


def test_nonsense_from_the_llm_falls_back_to_the_parser(tenant_a, openai_fake) -> None:
    openai_fake.structured = "not json"
    with tenant_a.schema():
        conversation = _conversation()
        _route("reminder", keywords=["remind me"])
        (reply,) = _ask(conversation, "remind me in 20 minutes to check the oven")
        assert Reminder.objects.get().text == "check the oven"
        assert reply.content["text"].startswith("Okay, I'll remind you to check the oven")


# --- task ----------------------------------------------------------------------------------


def test_a_snooze_or_cancel_processed_again_after_a_failure_changes_nothing_more(
    tenant_a, monkeypatch
) -> None:
    """The reminder handler may call a model, so it acts outside the answer's transaction: the
    message keys what it changed, and a rerun says the same and changes nothing else."""
    with tenant_a.schema():
        conversation = _conversation()
        _route("reminder", keywords=["remind me", "cancel my reminder", "snooze"])
        _ask(conversation, "remind me tomorrow at 9 to pay the rent")
        _ask(conversation, "remind me in 2 hours to water the plants")
        plants = Reminder.objects.get(text="water the plants")
        message = _ask_once_failing(conversation, "snooze 15 minutes", monkeypatch)
        conversation_drain(conversation_id=conversation.pk)
        (snoozed,) = _replies_to(message)
        assert snoozed.content["text"].startswith("Snoozed: I'll remind you “water the plants”")
        assert Reminder.objects.get(pk=plants.pk).due_at == plants.due_at + datetime.timedelta(
            minutes=15
        )
        message = _ask_once_failing(conversation, "cancel my reminder", monkeypatch)
        conversation_drain(conversation_id=conversation.pk)
        (cancelled,) = _replies_to(message)
        assert cancelled.content["text"] == "Cancelled your reminder “water the plants”."
        assert list(
            Reminder.objects.filter(conversation=conversation, status="scheduled").values_list(
                "text", flat=True
            )
        ) == ["pay the rent"]


def test_a_task_asked_for_again_after_a_failure_is_created_once(tenant_a, monkeypatch) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        _route("task", keywords=["call me back"])
        message = _ask_once_failing(conversation, "Please call me back today.", monkeypatch)
        task = Task.objects.get()
        conversation_drain(conversation_id=conversation.pk)
        (created,) = _replies_to(message)
        assert Task.objects.get() == task
        assert f"T-{task.pk.hex[:8].upper()}" in created.content["text"]


def test_a_request_becomes_a_task_operators_are_told_of_and_the_contact_can_track(
    tenant_a,
) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        _route("task", keywords=["call me back", "my request"])
        (created,) = _ask(conversation, "Hi, I need someone to call me back about my invoice.")
        task = Task.objects.get()
        assert task.title == "Call me back about my invoice"
        assert (task.conversation_id, task.contact_id, task.status) == (
            conversation.pk,
            conversation.contact_id,
            "open",
        )
        reference = f"T-{task.pk.hex[:8].upper()}"
        assert reference in created.content["text"]
        notification = Notification.objects.get(kind="task")
        assert notification.title == "New task: Call me back about my invoice"
        assert notification.conversation_id == conversation.pk
        assert notification.operator is None
        Task.objects.filter(pk=task.pk).update(status="in_progress")
        (status,) = _ask(conversation, "What's the status of my request?")
        assert status.content["text"] == (
            "Here is where your requests stand:\n"
            f"• Call me back about my invoice ({reference}): in progress"
        )
        assert Task.objects.count() == 1


def test_a_task_goes_to_the_conversation_operator(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        operator = OperatorFactory.create()
        Conversation.objects.filter(pk=conversation.pk).update(assignee=operator)
        conversation.refresh_from_db()
        _route("task", keywords=["refund"])
        _ask(conversation, "Please process a refund for order 42")
        task = Task.objects.get()
        assert task.assignee == operator
        assert Notification.objects.get(kind="task").operator == operator


def test_the_llm_titles_the_task(tenant_a, openai_fake) -> None:
    openai_fake.structured = {"action": "create", "title": "Refund order 42"}
    with tenant_a.schema():
        conversation = _conversation()
        _route("task", keywords=["refund"])
        (reply,) = _ask(
            conversation, "hey so my order 42 came broken, I want my money back (refund)"
        )
        assert Task.objects.get().title == "Refund order 42"
        assert _charged(reply) is not None


# --- assessment ----------------------------------------------------------------------------

DEFINITION = {
    "intro": "Three quick questions. Type stop to quit.",
    "questions": [
        {"id": "name", "text": "What is your name?", "type": "text", "max_length": 40},
        {"id": "seats", "text": "How many seats?", "type": "number", "integer": True, "min": 1},
        {
            "id": "channel",
            "text": "Main channel?",
            "type": "choice",
            "choices": [
                {"id": "wa", "title": "WhatsApp", "score": 3},
                {"id": "mail", "title": "Email", "score": 1},
            ],
        },
    ],
    "outcomes": [
        {"id": "later", "min_score": 0, "text": "We'll send you our guide."},
        {"id": "ready", "min_score": 3, "text": "A specialist will call you.", "handoff": True},
    ],
    "completion": "Thank you, {name}! Score: {score}.",
}


def test_an_assessment_asks_validates_and_stores_the_results(tenant_a) -> None:
    with tenant_a.schema():
        AssessmentFlow.objects.create(
            key="plan", name="Plan finder", definition=DEFINITION, trigger_keywords=["plan"]
        )
        conversation = _conversation()
        # Every message of the conversation goes to the flow while it runs.
        _route("assessment", pattern=r"\S")
        intro, first = _ask(conversation, "help me choose a plan")
        assert intro.content["text"] == "Three quick questions. Type stop to quit."
        assert first.content == {"type": "text", "text": "(1/3) What is your name?"}
        (second,) = _ask(conversation, "Ana")
        assert second.content["text"] == "(2/3) How many seats?"
        bad = _ask(conversation, "a dozen")
        assert _texts(bad) == ["Please answer with a number.", "(2/3) How many seats?"]
        too_few = _ask(conversation, "0")
        assert _texts(too_few)[0] == "Please answer with a number at least 1."
        (third,) = _ask(conversation, "12")
        assert third.content == {
            "type": "buttons",
            "text": "(3/3) Main channel?",
            "buttons": [{"id": "wa", "title": "WhatsApp"}, {"id": "mail", "title": "Email"}],
        }
        run = AssessmentRun.objects.get()
        assert (run.status, run.step) == ("in_progress", 2)
        done = _ask(conversation, "whatsapp")
        assert _texts(done)[:2] == ["Thank you, Ana! Score: 3.", "A specialist will call you."]
        run.refresh_from_db()
        assert run.status == "completed"
        assert run.completed_at is not None
        assert {key: item["value"] for key, item in run.answers.items()} == {
            "name": "Ana",
            "seats": 12,
            "channel": "wa",
        }
        assert (run.score, run.outcome) == (3.0, "ready")
        # The "ready" outcome hands the contact to a person; nothing was billed.
        conversation.refresh_from_db()
        assert conversation.status == "pending"
        assert not conversation.ai_active
        assert not ReplyCharge.objects.filter(message__conversation=conversation).exists()


def test_a_tenant_without_flows_is_not_asked_for_runs_and_a_new_flow_counts_at_once(
    tenant_a, tenant_b, memo_clock
) -> None:
    """Routing asks on every message whether a questionnaire owns it; a tenant that defined none
    can have no run, and is not asked once the memo knows (hub/memo.py), per tenant."""
    with tenant_b.schema():
        AssessmentFlow.objects.create(key="plan", name="Plan", definition=DEFINITION)
        assert conversation_sticky_handler(conversation_id=_conversation().pk) is None
    with tenant_a.schema():
        conversation = _conversation()
        assert conversation_sticky_handler(conversation_id=conversation.pk) is None
        with CaptureQueriesContext(connection) as queries:
            assert conversation_sticky_handler(conversation_id=conversation.pk) is None
        assert queries.captured_queries == []
        flow = AssessmentFlow.objects.create(key="plan", name="Plan", definition=DEFINITION)
        assessment_start(flow=flow, conversation=conversation, message=_say(conversation, "go"))
        assert conversation_sticky_handler(conversation_id=conversation.pk) == "assessment"


def test_an_assessment_can_be_stopped_and_a_choice_given_by_number(tenant_a) -> None:
    with tenant_a.schema():
        flow = AssessmentFlow.objects.create(key="plan", name="Plan", definition=DEFINITION)
        conversation = _conversation()
        message = _say(conversation, "start")
        first = HANDLERS["assessment"](_context(conversation, message, "assessment"))
        assert first.replies[-1]["text"] == "(1/3) What is your name?"
        for answer in ("Bo", "3"):
            HANDLERS["assessment"](_context(conversation, _say(conversation, answer), "assessment"))
        last = HANDLERS["assessment"](_context(conversation, _say(conversation, "2"), "assessment"))
        assert [r["text"] for r in last.replies] == [
            "Thank you, Bo! Score: 1.",
            "We'll send you our guide.",
        ]
        assert last.handoff is None
        assert last.billable is False
        run = AssessmentRun.objects.get(flow=flow)
        assert run.answers["channel"]["value"] == "mail"
        # A new run, stopped half way.
        HANDLERS["assessment"](_context(conversation, _say(conversation, "again"), "assessment"))
        stop = HANDLERS["assessment"](
            _context(conversation, _say(conversation, "Stop"), "assessment")
        )
        assert stop.replies == [{"type": "text", "text": "Okay, I've stopped the questions."}]
        assert sorted(AssessmentRun.objects.values_list("status", flat=True)) == [
            "cancelled",
            "completed",
        ]


def test_repeated_invalid_answers_hand_the_contact_to_a_person(tenant_a) -> None:
    with tenant_a.schema():
        AssessmentFlow.objects.create(
            key="plan", name="Plan", definition={**DEFINITION, "max_invalid_answers": 2}
        )
        conversation = _conversation()
        for text in ("start", "Cy"):
            HANDLERS["assessment"](_context(conversation, _say(conversation, text), "assessment"))
        HANDLERS["assessment"](_context(conversation, _say(conversation, "many"), "assessment"))
        result = HANDLERS["assessment"](
            _context(conversation, _say(conversation, "lots"), "assessment")
        )
        assert result.handoff == "assessment_invalid_answers"
        assert AssessmentRun.objects.get().status == "abandoned"


def test_a_message_is_never_taken_as_two_answers(tenant_a) -> None:
    with tenant_a.schema():
        AssessmentFlow.objects.create(key="plan", name="Plan", definition=DEFINITION)
        conversation = _conversation()
        HANDLERS["assessment"](_context(conversation, _say(conversation, "go"), "assessment"))
        answer = _say(conversation, "Di")
        HANDLERS["assessment"](_context(conversation, answer, "assessment"))
        again = HANDLERS["assessment"](_context(conversation, answer, "assessment"))
        assert again.replies == []
        assert AssessmentRun.objects.get().step == 1


def test_a_handler_that_calls_no_model_is_undone_with_its_failed_answer(
    tenant_a, monkeypatch
) -> None:
    """The assessment calls no model, so it runs in the transaction that writes its answer: a
    failed write undoes the run it started, and the rerun starts it and asks as the first did."""
    with tenant_a.schema():
        AssessmentFlow.objects.create(key="plan", name="Plan finder", definition=DEFINITION)
        conversation = _conversation()
        _route("assessment", pattern=r"\S")
        message = _ask_once_failing(conversation, "help me choose a plan", monkeypatch)
        assert not AssessmentRun.objects.exists()
        conversation_drain(conversation_id=conversation.pk)
        assert _texts(_replies_to(message)) == [
            "Three quick questions. Type stop to quit.",
            "(1/3) What is your name?",
        ]
        assert AssessmentRun.objects.count() == 1


def test_no_flow_to_start_is_said_plainly(tenant_a) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        result = HANDLERS["assessment"](
            _context(conversation, _say(conversation, "quiz"), "assessment")
        )
        assert result.replies == [
            {"type": "text", "text": "Sorry, there is no questionnaire to start right now."}
        ]


def test_routing_names_the_flow_among_several(tenant_a) -> None:
    with tenant_a.schema():
        AssessmentFlow.objects.create(key="plan", name="Plan", definition=DEFINITION)
        other = {**DEFINITION, "intro": "Health check."}
        AssessmentFlow.objects.create(key="health", name="Health", definition=other)
        conversation = _conversation()
        message = _say(conversation, "begin")
        context = HandlerContext(
            message=message,
            conversation=conversation,
            agent=conversation.channel.agent or Agent(),
            text="begin",
            route=Route(handler="assessment", entities={"assessment": "health"}),
        )
        result = HANDLERS["assessment"](context)
        assert result.replies[0]["text"] == "Health check."


@pytest.mark.parametrize("handler", ["qna", "small_talk", "reminder", "task", "assessment"])
def test_reactions_are_not_answered(tenant_a, handler) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        answer, _ = message_send(
            conversation=conversation, content={"type": "text", "text": "ok"}, sender_type="ai"
        )
        reaction = _say(
            conversation, {"type": "reaction", "emoji": "👍", "message_id": str(answer.pk)}
        )
        assert HANDLERS[handler](_context(conversation, reaction, handler)).replies == []


def test_handler_records_stay_in_their_tenant(tenant_a, tenant_b) -> None:
    with tenant_a.schema():
        conversation = _conversation()
        _route("feedback", pattern=r"^[1-5]$")
        _ask(conversation, "5")
        assert CsatRating.objects.count() == 1
    with tenant_b.schema():
        assert CsatRating.objects.count() == 0
    assert json.dumps(tenant_b.client().get("/api/v1/csat/").json()["results"]) == "[]"
