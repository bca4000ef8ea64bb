"""The answering pipeline in one task: the worker that stores an inbound message answers it,
sends the reply and charges it, with no further task; what it cannot do at once (a conversation
another worker holds, a provider that defers) goes to the queued tasks as before. Also: event
payloads keep the API's shape while reading attachments only for messages that name one."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.files.base import ContentFile
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from agents.models import Agent, LlmCall
from billing.models import CreditLedgerEntry
from billing.selectors import credit_balance_get
from channels_app.inbound import inbound_event_process, inbound_event_record
from channels_app.models import Channel, ChannelKind, InboundEvent
from channels_app.tasks import inbound_event_process_task
from conversations.api.serializers import MessageOutputSerializer
from conversations.events import message_payload
from conversations.models import Contact, ContactIdentity, Conversation, Message, Participant
from conversations.services.attachments import attachment_create
from conversations.services.messages import (
    message_receive,
    message_send,
    message_status_update,
)
from hub.celery import app
from hub.redis import get_redis
from processing.models import ConversationCursor, ReplyCharge, RoutingDecision
from tenants.models import Tenant
from tests.factories import ConversationFactory, OperatorFactory
from tests.fakes import FakeProvider, fake_provider

PHONE_NUMBER_ID = "100000000000931"
CONFIG = {
    "phone_number_id": PHONE_NUMBER_ID,
    "access_token": "pipeline-token",
    "app_secret": "pipeline-secret",
    "verify_token": "v",
}


def _sent_answer(_request: Any) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "messages": [{"id": f"wamid.out.{uuid.uuid4().hex}"}]}


@dataclass
class World:
    slug: str
    channel: Channel
    graph: FakeProvider

    def receive(self, text: str, *, sender: str = "15550000931") -> InboundEvent:
        from bench.driver import whatsapp_body

        body = whatsapp_body(
            phone_number_id=PHONE_NUMBER_ID,
            sender=sender,
            message_id=f"wamid.{uuid.uuid4().hex}",
            text=text,
            timestamp=1700000000,
        )
        with schema_context(self.slug):
            event, _ = inbound_event_record(
                channel=self.channel,
                provider_event_id=uuid.uuid4().hex,
                body=body,
                content_type="application/json",
            )
        return event

    def sends(self) -> list[str]:
        return [
            r.json()["text"]["body"] for r in self.graph.requests if r.path.endswith("/messages")
        ]


def _queued() -> dict[str, dict[str, Any]]:
    """The task messages waiting in the broker's queues (the suite runs no worker here), by id."""
    redis = get_redis()
    waiting = (json.loads(raw) for queue in app.amqp.queues for raw in redis.lrange(queue, 0, -1))
    return {message["headers"]["id"]: message for message in waiting}


def _queued_since(before: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [message for id_, message in _queued().items() if id_ not in before]


def _task_names(messages: list[dict[str, Any]]) -> list[str]:
    return [message["headers"]["task"] for message in messages]


def _cleanup(slug: str, channel: Channel) -> None:
    with schema_context(slug):
        conversations = Conversation.objects.filter(channel=channel)
        contacts = list(conversations.values_list("contact_id", flat=True))
        conversations.update(last_message=None)
        ReplyCharge.objects.filter(message__conversation__in=conversations).delete()
        RoutingDecision.objects.filter(conversation__in=conversations).delete()
        ConversationCursor.objects.filter(conversation__in=conversations).delete()
        LlmCall.objects.filter(agent=channel.agent).delete()
        Message.objects.filter(conversation__in=conversations).delete()
        Participant.objects.filter(conversation__in=conversations).delete()
        conversations.delete()
        ContactIdentity.objects.filter(contact_id__in=contacts).delete()
        Contact.objects.filter(pk__in=contacts).delete()
        InboundEvent.objects.filter(channel=channel).delete()
        channel.delete()
        Agent.objects.filter(name="Pipeline agent").delete()


@contextmanager
def _world(slug: str, settings: Any) -> Iterator[World]:
    with fake_provider() as graph:
        graph.default(r"/messages$", 200, _sent_answer)
        settings.HUB_META_GRAPH_URL = graph.url
        with schema_context(slug):
            agent = Agent.objects.create(name="Pipeline agent", instructions="Answer briefly.")
            channel = Channel.objects.create(
                kind=ChannelKind.WHATSAPP, name="WhatsApp", agent=agent, config=CONFIG
            )
        try:
            yield World(slug=slug, channel=channel, graph=graph)
        finally:
            _cleanup(slug, channel)


def _process(world: World, event: InboundEvent) -> None:
    with schema_context(world.slug):
        inbound_event_process_task.apply(args=[str(event.pk)]).get()


def test_one_task_stores_answers_sends_and_charges_with_no_other_task(
    committed_db, settings, openai_fake
) -> None:
    slug, other = committed_db["a"].slug, committed_db["b"].slug
    with _world(slug, settings) as world:
        with schema_context(other):
            other_balance = credit_balance_get()
            other_debits = CreditLedgerEntry.objects.count()
        with schema_context(slug):
            before = credit_balance_get()
        queued = _queued()
        _process(world, world.receive("pipeline-1"))

        assert world.sends() == ["You said: pipeline-1"]
        with schema_context(slug):
            (reply,) = Message.objects.filter(channel=world.channel, sender_type="ai")
            assert reply.status == "sent"
            assert reply.provider_message_id.startswith("wamid.out.")
            charge = ReplyCharge.objects.get(message=reply)
            assert charge.charged_at is not None
            assert credit_balance_get() == before - charge.amount
            assert CreditLedgerEntry.objects.filter(message=reply.pk).count() == 1
        # No drain, delivery or charge task: the one task did it all.
        assert _queued_since(queued) == []
        # The other tenant saw nothing of it.
        with schema_context(other):
            assert credit_balance_get() == other_balance
            assert CreditLedgerEntry.objects.count() == other_debits
            assert not Message.objects.filter(channel_id=world.channel.pk).exists()

        # The same event again (a redelivered task): nothing answered or charged twice.
        with schema_context(slug):
            event = InboundEvent.objects.get(channel=world.channel)
        _process(world, event)
        assert world.sends() == ["You said: pipeline-1"]
        with schema_context(slug):
            assert credit_balance_get() == before - charge.amount


# What one answered message from a known contact costs, BEGIN and COMMIT included, with the
# task run as Celery runs it (under the tenant's row) and, as in production, the tenant's rows
# remembered by the process since its first message (hub/memo.py: the tenant, its intents,
# rules and webhook subscriptions): a budget, so a change that adds round trips to every
# message shows (docs/performance.md, change 14).
STATEMENTS_PER_ANSWER = 47
SAVEPOINTS_PER_ANSWER = 6


def test_an_answer_stays_within_its_statement_budget(
    committed_db, settings, openai_fake, memo_clock
) -> None:
    slug = committed_db["a"].slug
    with _world(slug, settings) as world:
        _process(world, world.receive("the contact's first message"))
        event = world.receive("and a second one")
        tenant = Tenant.objects.get(schema_name=slug)
        with tenant_context(tenant), CaptureQueriesContext(connection) as queries:
            inbound_event_process_task.apply(args=[str(event.pk)]).get()
        assert world.sends()[-1] == "You said: and a second one"
        statements = [query["sql"] for query in queries.captured_queries]
        savepoints = [sql for sql in statements if sql.startswith("SAVEPOINT")]
        assert len(statements) <= STATEMENTS_PER_ANSWER, "\n".join(statements)
        assert len(savepoints) <= SAVEPOINTS_PER_ANSWER, "\n".join(statements)


def test_a_task_run_again_after_its_worker_died_answers_what_the_first_run_stored(
    committed_db, settings, openai_fake
) -> None:
    """Celery requeues a task whose worker died: the event is processed already, but what it
    stored may be unanswered; the second run answers it at once, and only once."""
    slug = committed_db["a"].slug
    with _world(slug, settings) as world:
        event = world.receive("stored, then the worker died")
        # The first run stored the message and died before answering it.
        with schema_context(slug):
            inbound_event_process(event_id=event.pk)
            assert not Message.objects.filter(channel=world.channel, sender_type="ai").exists()
        _process(world, event)
        assert world.sends() == ["You said: stored, then the worker died"]
        _process(world, event)
        assert world.sends() == ["You said: stored, then the worker died"]
        with schema_context(slug):
            assert Message.objects.filter(channel=world.channel, sender_type="ai").count() == 1


def test_a_conversation_another_worker_holds_is_left_to_the_drain_task(
    committed_db, settings, openai_fake
) -> None:
    slug = committed_db["a"].slug
    with _world(slug, settings) as world:
        _process(world, world.receive("first"))
        with schema_context(slug):
            conversation = Conversation.objects.get(channel=world.channel)
            # Another worker draining the conversation: its lease, not run out.
            cursor = ConversationCursor.objects.filter(conversation=conversation)
            cursor.update(held_by=uuid.uuid4(), held_until=timezone.now() + timedelta(minutes=1))
        queued = _queued()
        _process(world, world.receive("second"))
        new = _queued_since(queued)
        assert _task_names(new) == ["processing.conversation_drain"]
        assert new[0]["headers"]["_schema_name"] == slug
        assert world.sends() == ["You said: first"]
        with schema_context(slug):
            assert ConversationCursor.objects.get(conversation=conversation).processed_seq == 1


def test_a_reply_the_provider_defers_goes_to_the_delivery_task_after_retry_after(
    committed_db, settings, openai_fake
) -> None:
    slug = committed_db["a"].slug
    with _world(slug, settings) as world:
        error = {"error": {"message": "(#130429) Rate limit hit", "code": 130429}}
        world.graph.then(r"/messages$", 429, error, Retry_After="30")
        queued = _queued()
        _process(world, world.receive("deferred"))
        new = _queued_since(queued)
        assert _task_names(new) == ["channels.message_deliver"]
        eta = datetime.fromisoformat(new[0]["headers"]["eta"])
        assert (eta - timezone.now()).total_seconds() > 25
        with schema_context(slug):
            (reply,) = Message.objects.filter(channel=world.channel, sender_type="ai")
            assert reply.status == "pending"
            # Charged once delivered, not before.
            assert ReplyCharge.objects.get(message=reply).charged_at is None
            assert not CreditLedgerEntry.objects.filter(message=reply.pk).exists()


# --- Payloads ---------------------------------------------------------------------------------


def _json(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def test_message_payloads_are_the_api_shape_and_read_attachments_only_when_named(
    tenant_a,
) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        received, _ = message_receive(
            conversation=conversation,
            contact=conversation.contact,
            content={"type": "text", "text": "hello"},
        )
        operator = OperatorFactory.create()
        failed, _ = message_send(
            conversation=conversation,
            content={"type": "text", "text": "from a person"},
            sender_type="operator",
            sender_operator=operator,
        )
        message_status_update(
            message=failed, status="failed", error_code="rejected", error_message="no"
        )
        attachment = attachment_create(
            conversation=conversation,
            file=ContentFile(b"\x89PNG\r\n\x1a\n" + b"0" * 64),
            filename="photo.png",
            content_type="image/png",
        )
        with_file, _ = message_send(
            conversation=conversation,
            content={"type": "image", "attachment_id": str(attachment.pk)},
            sender_type="ai",
        )
        attachment.message = with_file
        attachment.save(update_fields=["message"])
        deleted, _ = message_send(
            conversation=conversation, content={"type": "text", "text": "oops"}, sender_type="ai"
        )
        Message.objects.filter(pk=deleted.pk).update(deleted_at=timezone.now())
        for message in (received, failed, with_file, deleted):
            api_shape = _json(MessageOutputSerializer(Message.objects.get(pk=message.pk)).data)
            message = Message.objects.get(pk=message.pk)
            with CaptureQueriesContext(connection) as queries:
                payload = message_payload(message)
            assert _json(payload) == api_shape
            # Its attachments for the message naming one, the operator for the operator's.
            assert len(queries) == (0 if message.pk in (received.pk, deleted.pk) else 1)
        assert api_shape["content"] is None
        with_file_shape = _json(message_payload(Message.objects.get(pk=with_file.pk)))
        assert [a["filename"] for a in with_file_shape["attachments"]] == ["photo.png"]
