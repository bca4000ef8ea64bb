"""The indexes of the tables every message writes: each one is written with every message (and,
but for HOT updates, with every update), so none is kept that another already serves."""

from __future__ import annotations

from django.db import connection, transaction

from conversations.models import Conversation, Message
from tests.factories import ConversationFactory


def _indexes(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = current_schema() AND tablename = %s",
            [table],
        )
        return dict(cursor.fetchall())


def _plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    return plan


def test_messages_are_found_by_conversation_through_the_seq_index_alone(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        definitions = _indexes("conversations_message").values()
        assert [d for d in definitions if d.endswith("(conversation_id)")] == []
        plan = _plan(Message.objects.filter(conversation=conversation).order_by("seq"))
    assert "message_seq_unique" in plan


HOT_TABLES = (
    "conversations_conversation",
    "processing_routingdecision",
    "agents_llmcall",
    "channels_app_inboundevent",
)


def test_tables_written_with_every_message_keep_no_like_twins(tenant_a, tenant_b) -> None:
    for tenant in (tenant_a, tenant_b):
        with tenant.schema():
            for table in HOT_TABLES:
                indexes = _indexes(table)
                assert indexes, table
                twins = [name for name, d in indexes.items() if "pattern_ops" in d]
                assert twins == [], table
    with tenant_a.schema():
        assert {"routing_decision_intent", "routing_decision_handler"} <= set(
            _indexes("processing_routingdecision")
        )
        assert "inbound_event_status" in _indexes("channels_app_inboundevent")


def test_conversations_by_status_and_by_thread_are_still_found_through_an_index(
    tenant_a,
) -> None:
    with tenant_a.schema():
        indexes = _indexes("conversations_conversation")
        singles = [d for d in indexes.values() if d.endswith("(status)")]
        assert singles == []
        assert [d for d in indexes.values() if "(provider_thread_id)" in d] == []
        conversation = ConversationFactory.create(provider_thread_id="thread-1")
        # With statistics of a table where few are snoozed, as in a tenant's: on a table of a
        # row or two the planner finds the activity index, filtered, as cheap and takes either.
        ConversationFactory.create_batch(20)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE conversations_conversation")
        by_status = _plan(
            Conversation.objects.filter(status=Conversation.Status.SNOOZED).order_by(
                "-last_activity_at"
            )
        )
        assert "conversation_status_activity" in by_status
        by_thread = _plan(
            Conversation.objects.filter(
                channel_id=conversation.channel_id,
                contact_id=conversation.contact_id,
                provider_thread_id="thread-1",
            ).order_by("-created_at")[:1]
        )
        assert "conversations_conversation_contact_id" in by_thread
