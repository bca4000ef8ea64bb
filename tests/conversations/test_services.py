"""The conversation domain's guarantees, on real PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import psycopg
import pytest
from django.db import connections, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from channels_app.models import ChannelKind
from conversations.content import InvalidContent
from conversations.models import Contact, ContactIdentity, Conversation, Message, Participant
from conversations.services.contacts import (
    IdentityTaken,
    InvalidMerge,
    contact_create,
    contact_erase,
    contact_identify,
    contact_merge,
)
from conversations.services.conversations import (
    GroupFull,
    InvalidStatus,
    conversation_set_status,
    conversations_wake_snoozed,
    participant_add,
    participant_mark_read,
)
from conversations.services.messages import (
    message_create,
    message_receive,
    message_send,
    message_status_update,
)
from hub.celery import app
from hub.redis import get_redis
from tenants.connection import tenant_connection
from tests import support
from tests.factories import ContactFactory, ConversationFactory, OperatorFactory

TEXT = {"type": "text", "text": "hello"}


def _out(conversation: Conversation, **kwargs: Any) -> Message:
    message, _ = message_create(
        conversation=conversation,
        direction="out",
        sender_type="operator",
        content=TEXT,
        status="pending",
        **kwargs,
    )
    return message


def _run_together(targets: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def test_seq_is_gap_free_under_20_concurrent_writers(committed_db) -> None:
    slug = committed_db["a"].slug
    with schema_context(slug):
        conversation = ConversationFactory.create()
    errors: list[BaseException] = []
    barrier = threading.Barrier(20)

    def write(index: int) -> None:
        try:
            with schema_context(slug):
                barrier.wait(10)
                message_create(
                    conversation=conversation,
                    direction="in",
                    sender_type="contact",
                    content={"type": "text", "text": f"message {index}"},
                    status="received",
                )
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    _run_together([partial(write, i) for i in range(20)])
    try:
        assert errors == []
        with schema_context(slug):
            seqs = list(
                Message.objects.filter(conversation=conversation)
                .order_by("seq")
                .values_list("seq", flat=True)
            )
            assert seqs == list(range(1, 21))
            refreshed = Conversation.objects.get(pk=conversation.pk)
            assert refreshed.last_seq == 20
            assert refreshed.last_message is not None
            assert refreshed.last_message.seq == 20
    finally:
        with schema_context(slug):
            Conversation.objects.filter(pk=conversation.pk).update(last_message=None)
            Message.objects.filter(conversation=conversation).delete()
            Participant.objects.filter(conversation=conversation).delete()
            conversation.delete()
            Contact.objects.filter(pk=conversation.contact_id).delete()
            conversation.channel.delete()
        tenant_connection().set_schema_to_public()


def test_status_only_moves_forward(tenant_a) -> None:
    with tenant_a.schema():
        message = _out(ConversationFactory.create())
        assert message_status_update(message=message, status="delivered")
        assert not message_status_update(message=message, status="sent")
        assert Message.objects.get(pk=message.pk).status == "delivered"
        assert not message_status_update(message=message, status="failed", error_code="131026")
        assert message_status_update(message=message, status="read")
        assert not message_status_update(message=message, status="delivered")
        assert Message.objects.get(pk=message.pk).status == "read"


def test_failed_keeps_the_providers_reason(tenant_a) -> None:
    with tenant_a.schema():
        message = _out(ConversationFactory.create())
        assert message_status_update(message=message, status="sent", provider_message_id="wamid.1")
        assert message_status_update(
            message=message, status="failed", error_code="131047", error_message="Re-engagement"
        )
        stored = Message.objects.get(pk=message.pk)
        assert (stored.status, stored.error_code, stored.error_message) == (
            "failed",
            "131047",
            "Re-engagement",
        )
        assert stored.provider_message_id == "wamid.1"


def test_repeated_client_id_or_provider_id_returns_the_first_message(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        first, created = message_create(
            conversation=conversation,
            direction="out",
            sender_type="operator",
            content=TEXT,
            status="pending",
            client_id="c-1",
        )
        again, created_again = message_create(
            conversation=conversation,
            direction="out",
            sender_type="operator",
            content={"type": "text", "text": "different"},
            status="pending",
            client_id="c-1",
        )
        assert created
        assert not created_again
        assert again.pk == first.pk
        assert again.content == TEXT
        inbound, _ = message_receive(
            conversation=conversation,
            contact=conversation.contact,
            content=TEXT,
            provider_message_id="wamid.X",
        )
        repeat, repeat_created = message_receive(
            conversation=conversation,
            contact=conversation.contact,
            content=TEXT,
            provider_message_id="wamid.X",
        )
        assert not repeat_created
        assert repeat.pk == inbound.pk
        assert Conversation.objects.get(pk=conversation.pk).last_seq == 2


def test_a_provider_id_stored_meanwhile_in_another_conversation_returns_that_message(
    committed_db,
) -> None:
    """Two conversations of a channel receive the same provider id at once: the second insert
    waits on the first's unique index entry, is turned down once it commits, and returns the
    first message instead of failing."""
    slug = committed_db["a"].slug
    with schema_context(slug):
        first_conversation = ConversationFactory.create()
        second_conversation = ConversationFactory.create(channel=first_conversation.channel)
    first_stored = threading.Event()
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def receive(conversation: Conversation) -> tuple[Message, bool]:
        return message_receive(
            conversation=conversation,
            contact=conversation.contact,
            content=TEXT,
            provider_message_id="wamid.race",
        )

    def first() -> None:
        try:
            with schema_context(slug), transaction.atomic():
                results["first"] = receive(first_conversation)
                first_stored.set()
                # Commit only once the second insert waits on this one's index entry.
                support.wait_until(
                    lambda: _backends_waiting_on_a_lock() > 0, timeout=20, what="the second insert"
                )
        except BaseException as error:
            errors.append(error)
            first_stored.set()
        finally:
            connections.close_all()

    def second() -> None:
        try:
            first_stored.wait(20)
            with schema_context(slug), transaction.atomic():
                results["second"] = receive(second_conversation)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    _run_together([first, second])
    try:
        assert errors == []
        stored, created = results["first"]
        returned, created_again = results["second"]
        assert created
        assert not created_again
        assert returned.pk == stored.pk
        with schema_context(slug):
            assert Message.objects.filter(provider_message_id="wamid.race").count() == 1
            assert Conversation.objects.get(pk=second_conversation.pk).last_seq == 0
    finally:
        with schema_context(slug):
            Conversation.objects.filter(
                pk__in=[first_conversation.pk, second_conversation.pk]
            ).update(last_message=None)


def _backends_waiting_on_a_lock() -> int:
    # A connection of its own: inside a transaction PostgreSQL keeps showing the activity it
    # first read.
    with psycopg.connect(support.database_url_for_tests(), autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"type": "text", "text": "x" * 4097}, "content.text"),
        ({"type": "text"}, "content.text"),
        ({"type": "teleport"}, "content.type"),
        ({"type": "image", "caption": "no url"}, "content.url"),
        ({"type": "location", "latitude": 91, "longitude": 0}, "content.latitude"),
        ({"type": "buttons", "text": "pick", "buttons": []}, "content.buttons"),
        ({"type": "text", "text": "hi", "colour": "red"}, "content.colour"),
        ("just a string", "content"),
    ],
)
def test_invalid_content_names_the_field(tenant_a, content, field) -> None:
    with tenant_a.schema(), pytest.raises(InvalidContent) as raised:
        message_create(
            conversation=ConversationFactory.create(),
            direction="out",
            sender_type="operator",
            content=content,
            status="pending",
        )
    assert field in raised.value.details


def test_a_resolved_conversation_reopens_when_the_contact_writes(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        conversation_set_status(conversation=conversation, status="resolved")
        message_receive(conversation=conversation, contact=conversation.contact, content=TEXT)
        assert Conversation.objects.get(pk=conversation.pk).status == "open"


def test_snoozed_needs_a_future_time_and_wakes_at_it(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        with pytest.raises(InvalidStatus):
            conversation_set_status(conversation=conversation, status="snoozed")
        conversation_set_status(
            conversation=conversation,
            status="snoozed",
            snoozed_until=timezone.now() + timedelta(hours=1),
        )
        assert conversations_wake_snoozed() == {"woken": 0}
        Conversation.objects.filter(pk=conversation.pk).update(
            snoozed_until=timezone.now() - timedelta(seconds=1)
        )
        assert conversations_wake_snoozed() == {"woken": 1}
        woken = Conversation.objects.get(pk=conversation.pk)
        assert (woken.status, woken.snoozed_until) == ("open", None)


def test_group_holds_at_most_the_tenant_limit(tenant_a) -> None:
    tenant = tenant_a.tenant
    tenant.max_group_participants = 3
    tenant.save()
    with tenant_a.schema():
        group = ConversationFactory.create(type=Conversation.Type.GROUP)
        participant_add(conversation=group, contact=ContactFactory.create(), role="member")
        participant_add(conversation=group, operator=OperatorFactory.create(), role="agent")
        with pytest.raises(GroupFull) as raised:
            participant_add(conversation=group, contact=ContactFactory.create(), role="member")
        assert raised.value.status_code == 409
        assert Participant.objects.filter(conversation=group).count() == 3


def test_read_position_never_moves_back_or_past_the_end(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        operator = OperatorFactory.create()
        for _ in range(3):
            _out(conversation)
        conversation.refresh_from_db()
        assert (
            participant_mark_read(conversation=conversation, operator=operator, seq=2).last_read_seq
            == 2
        )
        assert (
            participant_mark_read(conversation=conversation, operator=operator, seq=1).last_read_seq
            == 2
        )
        assert (
            participant_mark_read(
                conversation=conversation, operator=operator, seq=99
            ).last_read_seq
            == 3
        )


def test_identify_finds_or_creates_by_channel_identity(tenant_a) -> None:
    with tenant_a.schema():
        first, created = contact_identify(channel_kind="telegram", external_id="111", name="Ann")
        again, created_again = contact_identify(channel_kind="telegram", external_id="111")
        assert created
        assert not created_again
        assert first.pk == again.pk
        with pytest.raises(IdentityTaken):
            contact_create(identities=[("telegram", "111")], name="Impostor")


def test_merge_moves_identities_conversations_and_attributes(tenant_a) -> None:
    with tenant_a.schema():
        target = contact_create(
            identities=[("whatsapp", "4915100000001")], name="Ann", attributes={"tier": "gold"}
        )
        source = contact_create(
            identities=[("email", "ann@example.com")],
            email="ann@example.com",
            attributes={"tier": "silver", "city": "Lisbon"},
        )
        conversation = ConversationFactory.create(contact=source)
        message_receive(conversation=conversation, contact=source, content=TEXT)
        merged = contact_merge(target=target, source=source)
        assert not Contact.objects.filter(pk=source.pk).exists()
        assert merged.email == "ann@example.com"
        assert merged.name == "Ann"
        assert merged.attributes == {"tier": "gold", "city": "Lisbon"}
        assert set(
            ContactIdentity.objects.filter(contact=target).values_list("channel_kind", flat=True)
        ) == {"whatsapp", "email"}
        assert Conversation.objects.get(pk=conversation.pk).contact_id == target.pk
        assert Message.objects.get(conversation=conversation).sender_contact_id == target.pk
        assert (
            Participant.objects.get(conversation=conversation, contact__isnull=False).contact_id
            == target.pk
        )
        with pytest.raises(InvalidMerge):
            contact_merge(target=target, source=target)


def test_erase_removes_personal_data_and_messages_but_keeps_counts(tenant_a) -> None:
    with tenant_a.schema():
        contact = contact_create(
            identities=[("sms", "+15550001")], name="Bob", phone="+15550001", attributes={"a": 1}
        )
        conversation = ConversationFactory.create(contact=contact)
        message_receive(
            conversation=conversation,
            contact=contact,
            content={"type": "text", "text": "my secret"},
        )
        _out(conversation)
        contact_erase(contact=contact)
        contact.refresh_from_db()
        assert (contact.name, contact.phone, contact.attributes) == ("", "", {})
        assert contact.erased_at is not None
        assert not ContactIdentity.objects.filter(contact=contact).exists()
        messages = Message.objects.filter(conversation=conversation)
        assert messages.count() == 2
        assert not messages.filter(text__contains="secret").exists()
        assert all(m.content == {"type": "unsupported", "description": "erased"} for m in messages)


def _delivery_tasks_taken(message: Message) -> int:
    """Takes this message's delivery tasks out of the broker's queue (the suite runs no worker
    here, and a later one must not find them) and counts them."""
    redis = get_redis()
    taken = 0
    raw: Any
    queue = app.amqp.router.route({}, "channels.message_deliver")["queue"].name
    for raw in redis.lrange(queue, 0, -1):
        headers = json.loads(raw)["headers"]
        if headers["task"] == "channels.message_deliver" and str(message.pk) in headers["argsrepr"]:
            taken += redis.lrem(queue, 1, raw)
    return taken


def test_send_records_webchat_and_api_messages_sent_without_a_delivery_task(
    tenant_a, django_capture_on_commit_callbacks
) -> None:
    with tenant_a.schema():
        for kind in (ChannelKind.WEBCHAT, ChannelKind.API):
            conversation = ConversationFactory.create(channel__kind=kind)
            with django_capture_on_commit_callbacks(execute=True):
                message, _ = message_send(
                    conversation=conversation, content=TEXT, sender_type="operator"
                )
            assert message.status == "sent"
            assert Message.objects.get(pk=message.pk).status == "sent"
            assert _delivery_tasks_taken(message) == 0


def test_send_hands_provider_messages_to_delivery_and_keeps_notes_private(
    tenant_a, django_capture_on_commit_callbacks
) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create(
            channel__kind=ChannelKind.TELEGRAM, channel__config={}
        )
        with django_capture_on_commit_callbacks(execute=True):
            message, _ = message_send(
                conversation=conversation, content=TEXT, sender_type="operator"
            )
        assert Message.objects.get(pk=message.pk).status == "pending"
        assert _delivery_tasks_taken(message) == 1
        with django_capture_on_commit_callbacks(execute=True):
            note, _ = message_send(
                conversation=conversation, content=TEXT, sender_type="operator", is_private=True
            )
        assert note.is_private
        assert note.status == "sent"
        assert _delivery_tasks_taken(note) == 0
