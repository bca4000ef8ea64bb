"""The conversation and message outputs are built by hand for speed (api/serializers.py): they must
equal DRF's own output for the declared fields, value for value, type for type and byte for byte,
and the API's narrowed reads (selectors `conversation_list_for_api`, `message_list_after`) must
show exactly what a full read shows. The list's order must be the one its index serves."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from conversations import selectors
from conversations.api.serializers import (
    AttachmentOutputSerializer,
    ContactSummarySerializer,
    ConversationEventSerializer,
    ConversationOutputSerializer,
    MessageOutputSerializer,
)
from conversations.models import Attachment, Conversation, Message
from conversations.services.attachments import message_send_with_attachment
from conversations.services.messages import (
    message_receive,
    message_send,
    message_soft_delete,
    message_status_update,
)
from tenants.models import ApiKey
from tests.factories import ConversationFactory, OperatorFactory

URL = "/api/v1/conversations/"
HAND_BUILT = (
    AttachmentOutputSerializer,
    ContactSummarySerializer,
    ConversationEventSerializer,
    ConversationOutputSerializer,
    MessageOutputSerializer,
)


@contextmanager
def _drf_generic() -> Iterator[None]:
    """Every hand-built output serializer back on DRF's generic `to_representation`."""
    with ExitStack() as stack:
        for serializer_class in HAND_BUILT:
            stack.enter_context(
                mock.patch.object(
                    serializer_class,
                    "to_representation",
                    serializers.ModelSerializer.to_representation,
                )
            )
        yield


def _same(fast: Any, generic: Any) -> None:
    """Equal values of equal types all the way down, and the same JSON bytes."""
    assert fast == generic
    assert JSONRenderer().render(fast) == JSONRenderer().render(generic)

    def types(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: (type(item).__name__, types(item)) for key, item in value.items()}
        if isinstance(value, list):
            return [types(item) for item in value]
        return type(value).__name__

    assert types(fast) == types(generic)
    if isinstance(fast, dict):
        assert list(fast) == list(generic)


def _messages_of_every_kind(conversation: Conversation, media: Any) -> list[Message]:
    """Inbound, an operator's with a file, a failed one, a deleted one, a private note and a
    system message."""
    operator = OperatorFactory.create(display_name="Dana")
    inbound, _ = message_receive(
        conversation=conversation,
        contact=conversation.contact,
        content={"type": "text", "text": "Where is my parcel?"},
    )
    # As every path stores a file: the content names it (what the outputs rely on).
    label = Attachment.objects.create(
        conversation=conversation,
        file=media,
        filename="label.pdf",
        content_type="application/pdf",
        size=3,
    )
    with_file, _ = message_send_with_attachment(
        conversation=conversation,
        content={"type": "document", "attachment_id": str(label.pk), "caption": "The label"},
        sender_type=Message.SenderType.OPERATOR,
        sender_operator=operator,
    )
    failed, _ = message_send(
        conversation=conversation,
        content={"type": "text", "text": "Did it arrive?"},
        sender_type=Message.SenderType.AI,
    )
    message_status_update(
        message=failed,
        status=Message.Status.FAILED,
        error_code="provider_rejected",
        error_message="Outside the 24 h window.",
    )
    deleted, _ = message_receive(
        conversation=conversation,
        contact=conversation.contact,
        content={"type": "text", "text": "oops"},
    )
    message_soft_delete(message=deleted)
    note, _ = message_send(
        conversation=conversation,
        content={"type": "text", "text": "VIP, be quick"},
        sender_type=Message.SenderType.OPERATOR,
        sender_operator=operator,
        is_private=True,
    )
    system, _ = message_send(
        conversation=conversation,
        content={"type": "text", "text": "Conversation resolved"},
        sender_type=Message.SenderType.SYSTEM,
    )
    return [inbound, with_file, failed, deleted, note, system]


@pytest.fixture
def media(settings, tmp_path) -> str:
    """A stored file in a temporary MEDIA_ROOT, never in the shared var/."""
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "label.pdf").write_bytes(b"pdf")
    return "label.pdf"


@pytest.fixture
def varied(tenant_a, media) -> Conversation:
    """A conversation using every field the outputs show, with messages of every kind."""
    with tenant_a.schema():
        operator = OperatorFactory.create()
        conversation = ConversationFactory.create(
            labels=["vip", "billing"],
            priority=Conversation.Priority.HIGH,
            assignee=operator,
            provider_thread_id="thread-1",
            ai_active=False,
        )
        _messages_of_every_kind(conversation, media)
        Conversation.objects.filter(pk=conversation.pk).update(
            status=Conversation.Status.SNOOZED,
            snoozed_until=timezone.now() + timedelta(hours=3),
        )
    return conversation


def test_hand_built_outputs_equal_drf_generic_ones(tenant_a, varied) -> None:
    with tenant_a.schema():
        messages = list(Message.objects.filter(conversation=varied).order_by("seq"))
        assert any(m.attachments.exists() for m in messages)
        conversation = Conversation.objects.get(pk=varied.pk)
        conversation.unread_count = 2  # type: ignore[attr-defined]
        # Values as services leave them on an instance, not only as read back: choice members.
        conversation.priority = Conversation.Priority.URGENT
        conversation.status = Conversation.Status.PENDING
        # No messages, no assignee, no labels, no unread annotation.
        bare = ConversationFactory.create()

        def outputs() -> list[Any]:
            return [
                MessageOutputSerializer(messages, many=True).data,
                ConversationEventSerializer(conversation).data,
                ConversationOutputSerializer(conversation).data,
                ConversationOutputSerializer(bare).data,
            ]

        fast = outputs()
        with _drf_generic():
            generic = outputs()
    for fast_output, generic_output in zip(fast, generic, strict=True):
        _same(fast_output, generic_output)


@pytest.mark.parametrize("encrypted", [False, True])
def test_the_api_shows_what_a_full_read_shows(tenant_a, varied, encrypted) -> None:
    tenant = tenant_a.tenant
    tenant.message_encryption = encrypted
    tenant.save()
    with tenant_a.schema():
        # Re-written under the tenant's setting (encrypted at rest when it is on).
        for message in Message.objects.filter(conversation=varied):
            message.save()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT content::text FROM conversations_message WHERE conversation_id = %s",
                [varied.pk],
            )
            stored = [row[0] for row in cursor.fetchall()]
    assert all(('"$enc"' in content) == encrypted for content in stored)
    client = tenant_a.client()
    listed = client.get(URL).json()["results"]
    detail = client.get(f"{URL}{varied.pk}/").json()
    history = client.get(f"{URL}{varied.pk}/messages/").json()["results"]
    assert detail == next(item for item in listed if item["id"] == str(varied.pk))
    with tenant_a.schema(), _drf_generic():
        key = ApiKey.objects.get(prefix=tenant_a.api_key.split("_")[1])
        reader = selectors.Reader(api_key_id=key.pk)
        full = list(
            selectors.conversation_list_by_activity(reader=reader).order_by(
                F("activity_at").desc(), "-id"
            )
        )
        expected_list = ConversationOutputSerializer(full, many=True).data
        messages = Message.objects.filter(conversation=varied).order_by("seq")
        expected_history = MessageOutputSerializer(messages, many=True).data
    assert JSONRenderer().render(listed) == JSONRenderer().render(expected_list)
    assert JSONRenderer().render(history) == JSONRenderer().render(expected_history)
    shown = next(item for item in listed if item["id"] == str(varied.pk))
    assert shown["last_message"]["content"] == {"type": "text", "text": "Conversation resolved"}
    assert history[1]["attachments"][0]["filename"] == "label.pdf"
    assert history[1]["sender"]["name"] == "Dana"
    assert history[3]["content"] is None


def test_list_order_is_newest_activity_first_with_ids_breaking_ties(tenant_a) -> None:
    now = timezone.now()
    with tenant_a.schema():
        conversations = ConversationFactory.create_batch(7)
        same = now - timedelta(minutes=5)
        # Two with the same activity (the id decides), one without activity (its creation
        # time counts), the others spread out.
        activities = [same, same, None, now - timedelta(minutes=1), now - timedelta(hours=1)]
        for conversation, at in zip(conversations, activities, strict=False):
            Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=at)
        Conversation.objects.filter(pk=conversations[2].pk).update(
            created_at=now - timedelta(minutes=3)
        )
        rows = Conversation.objects.all()
        expected = [
            str(c.pk)
            for c in sorted(
                rows,
                key=lambda c: (c.last_activity_at or c.created_at, c.pk),
                reverse=True,
            )
        ]
    client = tenant_a.client()
    seen: list[str] = []
    page = client.get(URL, {"page_size": 2}).json()
    while True:
        seen += [item["id"] for item in page["results"]]
        if not page["next"]:
            break
        page = client.get(page["next"]).json()
    assert seen == expected


@pytest.mark.parametrize(
    ("filters", "index", "other_index"),
    [
        ({}, "conversation_activity_idx", "conversation_status_act_idx"),
        ({"status": "snoozed"}, "conversation_status_act_idx", "conversation_activity_idx"),
    ],
)
def test_the_list_is_read_in_index_order(tenant_a, filters, index, other_index, settings) -> None:
    """With sorting priced out, the plan must still be an index scan in the list's order: the
    indexes' expression matches the selectors' `activity_at`. Either index gives a filtered
    list its order, and which one the planner takes depends on the statistics of the moment,
    so the other is dropped (in a transaction rolled back) to put each one to the test."""
    with tenant_a.schema():
        shown = ConversationFactory.create_batch(3)[0]
        reader = selectors.Reader(api_key_id=uuid.uuid4())
        after = (shown.created_at, shown.pk)
        settings.HUB_DB_PREPARED_STATEMENTS = False
        with CaptureQueriesContext(connection) as queries:
            selectors.conversation_page_for_api(reader=reader, after=after, size=51, **filters)
        # The page's query with its values in place, as Django's query log shows it.
        sql = queries.captured_queries[0]["sql"]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DROP INDEX {other_index}")
            cursor.execute("SET LOCAL enable_sort = off")
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            transaction.set_rollback(True)
    assert index in plan
    assert "Sort" not in plan.split(index)[0]
    # The page starts where the one before ended: a bound of the index's range, not a filter.
    condition = plan.split(index)[1].split("\n")[1]
    assert "Index Cond" in condition
    assert "COALESCE" in condition


def test_another_tenants_conversations_are_neither_listed_nor_their_messages(
    tenant_a, tenant_b, varied
) -> None:
    b = tenant_b.client()
    assert str(varied.pk) not in {item["id"] for item in b.get(URL).json()["results"]}
    assert b.get(f"{URL}{varied.pk}/messages/").status_code == 404
