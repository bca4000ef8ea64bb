"""Exports stream: 100,000 versions leave without being loaded together, in process (WSGI-style
test client) and through the real ASGI server (where Django would buffer a sync iterator)."""

from __future__ import annotations

import sys
from pathlib import Path

import requests
from django.db import connection
from django_tenants.utils import schema_context

from conversations.models import Contact, Conversation
from extraction import selectors
from extraction.models import Extraction
from tests.factories import ConversationFactory

LIST = "/api/v1/extractions/"


def _bulk_versions(conversation: Conversation, count: int) -> None:
    """`count` versions of one conversation, written by PostgreSQL itself (fast)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO extraction_extraction (
                id, conversation_id, contact_id, version, data, found_fields, confirmed, dropped,
                changes, source, trigger, through_seq, model, tokens, credits, created_at
            )
            SELECT gen_random_uuid(), %s, %s, n,
                jsonb_build_object(
                    'name', 'Lead number ' || n,
                    'email', 'lead' || n || '@example.com',
                    'notes', repeat('x', 60)
                ),
                ARRAY['email', 'name', 'notes'], ARRAY['name'], '[]'::jsonb, '{}'::jsonb,
                'llm', 'idle', 1, '', 0, 0,
                now() - n * interval '1 second'
            FROM generate_series(1, %s) AS n
            """,
            [conversation.pk, conversation.contact_id, count],
        )


def test_a_100k_row_csv_export_streams_without_loading_the_rows(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        _bulk_versions(conversation, 100_000)
        # What holding every row at once costs, to compare with (the interpreter's count of
        # small allocated blocks: cheap to read, unlike tracing every allocation).
        before = sys.getallocatedblocks()
        every_row = list(selectors.extraction_list().values_list("pk", "data", "confirmed"))
        held_whole = sys.getallocatedblocks() - before
        del every_row
    response = tenant_a.client().get(LIST, {"format": "csv"})
    assert response.status_code == 200
    assert response.streaming
    baseline = sys.getallocatedblocks()
    lines = size = chunks = peak = 0
    for chunk in response.streaming_content:
        lines += chunk.count(b"\n")
        size += len(chunk)
        chunks += 1
        peak = max(peak, sys.getallocatedblocks() - baseline)
    assert lines == 100_001  # the header and every version
    assert size > 15_000_000
    assert chunks > 200  # sent as it is written, 64 KiB at a time
    assert held_whole > 1_000_000
    assert peak < held_whole / 10, f"{peak} blocks held while streaming ({held_whole} for all)"


def test_the_asgi_server_streams_exports_without_buffering(
    committed_db, live_server_url, tmp_path: Path
) -> None:
    info = committed_db["a"]
    with schema_context(info.slug):
        conversation = ConversationFactory.create()
        _bulk_versions(conversation, 20_000)
    try:
        headers = {"Authorization": f"Bearer {info.api_key}"}
        for export, lines_expected in (("csv", 20_001), ("jsonl", 20_000)):
            with requests.get(
                f"{live_server_url}{LIST}",
                params={"format": export},
                headers=headers,
                stream=True,
                timeout=60,
            ) as response:
                assert response.status_code == 200
                assert response.headers.get("Transfer-Encoding") == "chunked"
                pieces = list(response.iter_content(chunk_size=None))
            assert len(pieces) > 10
            assert b"".join(pieces).count(b"\n") == lines_expected
        # Django warns whenever it has to read a sync iterator whole under ASGI.
        assert "must consume synchronous iterators" not in (tmp_path / "uvicorn.log").read_text()
    finally:
        with schema_context(info.slug):
            Extraction.objects.filter(conversation=conversation).delete()
            conversation.participants.all().delete()
            conversation.delete()
            Contact.objects.filter(pk=conversation.contact_id).delete()
            conversation.channel.delete()
