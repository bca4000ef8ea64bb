"""The messages table's indexes: each one is written with every message, so none is kept that
another already serves."""

from __future__ import annotations

from django.db import connection, transaction

from conversations.models import Message
from tests.factories import ConversationFactory


def test_messages_are_found_by_conversation_through_the_seq_index_alone(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()"
                " AND tablename = 'conversations_message'"
            )
            definitions = [row[0] for row in cursor.fetchall()]
        assert [d for d in definitions if d.endswith("(conversation_id)")] == []
        sql, params = (
            Message.objects.filter(conversation=conversation)
            .order_by("seq")
            .query.sql_with_params()
        )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            transaction.set_rollback(True)
    assert "message_seq_unique" in plan
