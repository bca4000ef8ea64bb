"""Writes on the knowledge base: documents, their chunks, and the chunks' embeddings.

Saving a document rewrites its chunks in the same transaction (so search never sees a document
without its passages) and, after commit, asks a worker to embed the new chunks. Embedding is
best effort: while the LLM is down or unconfigured, or the database has no pgvector, chunks stay
unembedded and search uses full text; the `knowledge.index` job catches up later.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from agents.llm import LlmUnavailable, llm_configured, llm_embed
from knowledge.models import KnowledgeChunk, KnowledgeDocument
from knowledge.selectors import (
    knowledge_chunks_unembedded,
    knowledge_documents_unchunked,
    vector_search_enabled,
)

logger = logging.getLogger(__name__)

DOCUMENT_FIELDS = {"title", "body", "source_url", "enabled"}
# Chunks embedded per pass of the catch-up job, per tenant.
EMBED_PER_PASS = 512


def _sentences(body: str) -> list[str]:
    """Paragraphs split into sentences; a paragraph break is kept as an empty marker so a chunk
    prefers to end there."""
    units: list[str] = []
    for paragraph in re.split(r"\n\s*\n", body.strip()):
        text = " ".join(paragraph.split())
        if not text:
            continue
        units.extend(part for part in re.split(r"(?<=[.!?])\s+", text) if part)
        units.append("")
    return units


def _hard_split(sentence: str, size: int) -> list[str]:
    """A sentence longer than a chunk, cut at word boundaries (or mid-word when it must)."""
    pieces: list[str] = []
    while len(sentence) > size:
        cut = sentence.rfind(" ", 0, size)
        cut = cut if cut > size // 2 else size
        pieces.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    if sentence:
        pieces.append(sentence)
    return pieces


def chunk_text(body: str, *, size: int | None = None) -> list[str]:
    """`body` cut into passages of at most `size` characters (HUB_KNOWLEDGE_CHUNK_CHARS), on
    paragraph and sentence boundaries. A passage that had to stop mid-paragraph is followed by
    one that repeats its last sentence, so an answer spanning the cut is found whole in one."""
    size = size or settings.HUB_KNOWLEDGE_CHUNK_CHARS
    chunks: list[str] = []
    current: list[str] = []

    def emit(*, overlap: bool) -> None:
        nonlocal current
        if current:
            chunks.append(" ".join(current))
        last = current[-1] if overlap and current else ""
        current = [last] if last and len(last) <= size // 3 else []

    for unit in _sentences(body):
        if not unit:
            emit(overlap=False)
            continue
        for piece in _hard_split(unit, size):
            if current and len(" ".join([*current, piece])) > size:
                emit(overlap=True)
            current.append(piece)
    emit(overlap=False)
    # Paragraph breaks emit eagerly; short neighbours are merged back while they fit.
    merged: list[str] = []
    for chunk in chunks:
        if merged and len(merged[-1]) + 2 + len(chunk) <= size:
            merged[-1] = f"{merged[-1]}\n\n{chunk}"
        else:
            merged.append(chunk)
    return merged


def _chunks_write(document: KnowledgeDocument) -> int:
    """Replaces the document's chunks; an unchanged passage keeps its embedding."""
    kept = {
        (chunk.title, chunk.text): chunk
        for chunk in KnowledgeChunk.objects.filter(document=document).exclude(embedding=None)
    }
    KnowledgeChunk.objects.filter(document=document).delete()
    rows = []
    for position, text in enumerate(chunk_text(document.body)):
        previous = kept.get((document.title, text))
        rows.append(
            KnowledgeChunk(
                document=document,
                position=position,
                title=document.title,
                text=text,
                embedding=previous.embedding if previous else None,
                embedding_model=previous.embedding_model if previous else "",
                embedded_at=previous.embedded_at if previous else None,
            )
        )
    KnowledgeChunk.objects.bulk_create(rows)
    return len(rows)


def _embed_after_commit(document_id: uuid.UUID) -> None:
    if not (llm_configured() and vector_search_enabled()):
        return

    def enqueue() -> None:
        from knowledge.tasks import knowledge_document_embed_task

        try:
            knowledge_document_embed_task.delay(str(document_id))
        except (RedisError, BrokerError, OSError) as error:
            logger.warning(
                "broker unavailable; embedding left to the knowledge.index job",
                extra={"error": type(error).__name__},
            )

    transaction.on_commit(enqueue)


@transaction.atomic
def knowledge_document_create(
    *, title: str, body: str, source_url: str = "", enabled: bool = True
) -> KnowledgeDocument:
    """A new document with its chunks; embedded after commit."""
    document = KnowledgeDocument.objects.create(
        title=title, body=body, source_url=source_url, enabled=enabled
    )
    _chunks_write(document)
    _embed_after_commit(document.pk)
    return document


@transaction.atomic
def knowledge_document_update(*, document: KnowledgeDocument, **fields: Any) -> KnowledgeDocument:
    """Changes the document; a new title or body rewrites its chunks (unchanged passages keep
    their embeddings, new ones are embedded after commit)."""
    unknown = set(fields) - DOCUMENT_FIELDS
    if unknown:
        raise TypeError(f"Unknown document fields: {sorted(unknown)}")
    rechunk = any(
        name in fields and fields[name] != getattr(document, name) for name in ("title", "body")
    )
    for name, value in fields.items():
        setattr(document, name, value)
    document.save()
    if rechunk or not document.chunks.exists():
        _chunks_write(document)
        _embed_after_commit(document.pk)
    return document


@transaction.atomic
def knowledge_document_reindex(*, document: KnowledgeDocument) -> int:
    """Cuts the document again and drops its embeddings, so every passage is embedded anew
    (after a change of chunk size or embedding model). Returns the number of passages."""
    KnowledgeChunk.objects.filter(document=document).update(
        embedding=None, embedding_model="", embedded_at=None
    )
    count = _chunks_write(document)
    _embed_after_commit(document.pk)
    return count


@transaction.atomic
def knowledge_document_delete(*, document: KnowledgeDocument) -> None:
    document.delete()


def knowledge_chunks_embed(*, document_id: uuid.UUID | str | None = None, limit: int) -> int:
    """Embeds chunks that have no embedding from the current model (one document's, or any),
    at most `limit`. Returns how many it embedded; 0 when embedding is off or the LLM is
    unavailable (logged; the chunks wait for the next pass). Safe to run twice at once: a
    chunk rewritten meanwhile is simply not updated."""
    if not (llm_configured() and vector_search_enabled()):
        return 0
    pending = knowledge_chunks_unembedded()
    if document_id is not None:
        pending = pending.filter(document_id=uuid.UUID(str(document_id)))
    chunks = list(pending.order_by("document_id", "position")[:limit])
    if not chunks:
        return 0
    try:
        vectors = llm_embed([f"{chunk.title}\n\n{chunk.text}" for chunk in chunks])
    except LlmUnavailable as unavailable:
        logger.warning(
            "knowledge chunks not embedded; search uses full text until they are",
            extra={"reason": unavailable.reason, "chunks": len(chunks)},
        )
        return 0
    now = timezone.now()
    embedded = 0
    for chunk, vector in zip(chunks, vectors, strict=True):
        embedded += KnowledgeChunk.objects.filter(pk=chunk.pk, text=chunk.text).update(
            embedding=vector, embedding_model=settings.HUB_EMBEDDING_MODEL, embedded_at=now
        )
    return embedded


def knowledge_index_catch_up() -> dict[str, int]:
    """Chunks documents that have none (rows written around the services: imports, the shell)
    and embeds what is still unembedded."""
    chunked = 0
    for document in knowledge_documents_unchunked()[:200]:
        with transaction.atomic():
            _chunks_write(document)
        chunked += 1
    embedded = knowledge_chunks_embed(limit=EMBED_PER_PASS)
    return {"chunked": chunked, "embedded": embedded}
