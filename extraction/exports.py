"""Streamed exports of extraction versions (`?format=csv`, `?format=jsonl`).

Rows come from a server-side cursor (`QuerySet.iterator`) a chunk at a time and leave as they
are written, so an export of any size holds one chunk in memory. Under ASGI the stream must be
an async iterator (Django would otherwise read a sync one whole before sending a byte), so
there each chunk is pulled through `sync_to_async` on the request's own thread, and with it its
database connection.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from itertools import islice
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django_tenants.utils import schema_context

from extraction.api.serializers import ExtractionOutputSerializer
from extraction.models import Extraction
from tenants.connection import tenant_connection

ROWS_PER_FETCH = 2000
BYTES_PER_CHUNK = 64 * 1024
CSV_COLUMNS = [
    "id",
    "created_at",
    "conversation",
    "contact",
    "channel",
    "version",
    "source",
    "trigger",
]
# A spreadsheet runs a cell starting with these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text.startswith(FORMULA_START) and not _is_number(text):
        # Phone numbers (+14155552671) and negative numbers stay as they are.
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _batches(rows: Iterator[Any]) -> Iterator[list[Any]]:
    while batch := list(islice(rows, ROWS_PER_FETCH)):
        yield batch


def csv_lines(queryset: QuerySet[Extraction], *, field_names: list[str]) -> Iterator[str]:
    """A header, then one line per version: its ids, then one column per field of the schema
    (empty when not found), then the confirmed and the dropped fields' names. Rows are read as
    tuples, not model instances: an export is mostly this loop."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow([*CSV_COLUMNS, *field_names, "confirmed", "dropped"])
    yield flush()
    rows = queryset.values_list(
        "pk",
        "created_at",
        "conversation_id",
        "contact_id",
        "conversation__channel_id",
        "version",
        "source",
        "trigger",
        "data",
        "confirmed",
        "dropped",
    ).iterator(chunk_size=ROWS_PER_FETCH)
    for (
        pk,
        created_at,
        conversation,
        contact,
        channel,
        version,
        source,
        trigger,
        data,
        confirmed,
        dropped,
    ) in rows:
        # Only the extracted values can hold a customer's text; the rest are ours.
        writer.writerow(
            [
                pk,
                created_at.isoformat(),
                conversation,
                contact or "",
                channel or "",
                version,
                source,
                trigger,
                *[_cell(data.get(name)) for name in field_names],
                ";".join(confirmed),
                ";".join(item.get("field", "") for item in dropped),
            ]
        )
        yield flush()


def jsonl_lines(queryset: QuerySet[Extraction], *, required_fields: list[str]) -> Iterator[str]:
    """One JSON object per line, in the API's shape."""
    context = {"required_fields": required_fields}
    for batch in _batches(queryset.iterator(chunk_size=ROWS_PER_FETCH)):
        # One list serializer per batch: its fields are bound once, not once per row.
        for record in ExtractionOutputSerializer(batch, many=True, context=context).data:
            yield json.dumps(record, cls=DjangoJSONEncoder, ensure_ascii=False) + "\n"


def _chunks(lines: Iterator[str], schema: str) -> Generator[bytes, None, None]:
    # The schema is pinned for the whole stream: the response outlives the view.
    with schema_context(schema):
        pending: list[str] = []
        size = 0
        for text in lines:
            pending.append(text)
            size += len(text)
            if size >= BYTES_PER_CHUNK:
                yield "".join(pending).encode()
                pending, size = [], 0
        if pending:
            yield "".join(pending).encode()


async def _async_chunks(chunks: Generator[bytes, None, None]) -> AsyncIterator[bytes]:
    next_chunk: Callable[[], Any] = sync_to_async(lambda: next(chunks, None), thread_sensitive=True)
    try:
        while (chunk := await next_chunk()) is not None:
            yield chunk
    finally:
        await sync_to_async(chunks.close, thread_sensitive=True)()


def streaming_export(
    *, request: HttpRequest, lines: Iterator[str], content_type: str, filename: str
) -> StreamingHttpResponse:
    chunks = _chunks(lines, tenant_connection().schema_name)
    content: Iterator[bytes] | AsyncIterator[bytes] = (
        _async_chunks(chunks) if isinstance(request, ASGIRequest) else chunks
    )
    response = StreamingHttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
