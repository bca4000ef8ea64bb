"""Reads on the knowledge base: full-text search over documents (the offline responder), and
passage search for answers with sources (the `qna` handler): by embedding similarity in pgvector
where the database has it, by PostgreSQL full text otherwise."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connection
from django.db.models import Count, F, Q, QuerySet

from agents.llm import LlmUnavailable, llm_configured, llm_embed
from hub.exceptions import NotFoundError
from knowledge.models import KnowledgeChunk, KnowledgeDocument

logger = logging.getLogger(__name__)

# Below this rank a document is not an answer, however it ranks against the others.
MIN_RANK = 0.01

VECTOR = "vector"
FULL_TEXT = "full_text"

# Whether each database (by name) has pgvector, looked up once per process.
_pgvector_schemas: dict[str, str | None] = {}


@dataclass(frozen=True)
class KnowledgeMatch:
    document: KnowledgeDocument
    rank: float


@dataclass(frozen=True)
class PassageMatch:
    """A passage that answers a question: its document (the source to cite), its text, how
    well it matched (cosine similarity or full-text rank) and how it was found."""

    document: KnowledgeDocument
    text: str
    score: float
    method: str


def _query(text: str) -> SearchQuery | None:
    words = [
        word for word in "".join(c if c.isalnum() else " " for c in text).split() if len(word) > 2
    ]
    if not words:
        return None
    return SearchQuery(" OR ".join(words), config="simple", search_type="websearch")


def knowledge_search(*, text: str, limit: int = 3) -> list[KnowledgeMatch]:
    """The enabled documents that best match `text`, by PostgreSQL full-text rank. Any word may
    match (the question's words are OR-ed), so a plain question finds its answer."""
    query = _query(text)
    if query is None:
        return []
    rows = (
        KnowledgeDocument.objects.filter(enabled=True, search_vector=query)
        .annotate(rank=SearchRank(F("search_vector"), query))
        .filter(rank__gte=MIN_RANK)
        .order_by("-rank", "title")[:limit]
    )
    return [KnowledgeMatch(document=row, rank=float(row.rank)) for row in rows]


def knowledge_document_list(
    *, q: str | None = None, enabled: bool | None = None
) -> QuerySet[KnowledgeDocument]:
    """Documents with their passage counts (`chunk_count`, `embedded_chunk_count`), filtered."""
    documents = KnowledgeDocument.objects.annotate(
        chunk_count=Count("chunks"),
        embedded_chunk_count=Count("chunks", filter=Q(chunks__embedding__isnull=False)),
    )
    if enabled is not None:
        documents = documents.filter(enabled=enabled)
    query = _query(q) if q else None
    if query is not None:
        documents = documents.filter(search_vector=query)
    return documents


def knowledge_document_get(*, document_id: uuid.UUID | str) -> KnowledgeDocument:
    """One document of this tenant (with its counts); NotFoundError otherwise."""
    try:
        return knowledge_document_list().get(pk=uuid.UUID(str(document_id)))
    except (ValueError, KnowledgeDocument.DoesNotExist) as error:
        raise NotFoundError("No such knowledge document.") from error


def pgvector_schema() -> str | None:
    """The schema holding the `vector` extension in this database, or None without it."""
    name = str(connection.settings_dict["NAME"])
    if name not in _pgvector_schemas:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT n.nspname FROM pg_extension e "
                "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
            )
            row = cursor.fetchone()
        _pgvector_schemas[name] = row[0] if row else None
        if row is None:
            logger.warning(
                "pgvector is not installed in this database: knowledge search uses PostgreSQL "
                "full text only"
            )
    return _pgvector_schemas[name]


def vector_search_enabled() -> bool:
    """Embeddings are made and searched only where they can be: pgvector installed and
    `HUB_KNOWLEDGE_VECTOR_SEARCH` on."""
    return bool(settings.HUB_KNOWLEDGE_VECTOR_SEARCH) and pgvector_schema() is not None


def knowledge_chunks_unembedded() -> QuerySet[KnowledgeChunk]:
    """Chunks with no embedding from the current model."""
    return KnowledgeChunk.objects.exclude(
        embedding_model=settings.HUB_EMBEDDING_MODEL, embedding__isnull=False
    )


def knowledge_documents_unchunked() -> QuerySet[KnowledgeDocument]:
    """Documents written around the services (imports, the shell) that have no chunks yet."""
    return KnowledgeDocument.objects.filter(chunks__isnull=True).distinct()


def knowledge_index_pending() -> bool:
    """Whether the catch-up job has a document to chunk or a chunk it can embed."""
    if knowledge_documents_unchunked().exists():
        return True
    return llm_configured() and vector_search_enabled() and knowledge_chunks_unembedded().exists()


def _embedded_chunks() -> QuerySet[KnowledgeChunk]:
    return KnowledgeChunk.objects.filter(
        document__enabled=True,
        embedding_model=settings.HUB_EMBEDDING_MODEL,
        embedding__len=settings.HUB_EMBEDDING_DIMENSIONS,
    )


def _vector_search(text: str, limit: int) -> list[PassageMatch]:
    if not _embedded_chunks().exists():
        return []
    (query_vector,) = llm_embed([text])
    dimensions = int(settings.HUB_EMBEDDING_DIMENSIONS)
    schema = pgvector_schema()
    vector = f'"{schema}".vector({dimensions})'
    # The same expression and predicate as the HNSW index (migration 0003), so it is used.
    distance = f'(c.embedding::{vector}) OPERATOR("{schema}".<=>) (%s::float8[]::{vector})'
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.id, 1 - ({distance}) FROM knowledge_knowledgechunk c "  # noqa: S608 - no input
            "JOIN knowledge_knowledgedocument d ON d.id = c.document_id "
            f"WHERE d.enabled AND c.embedding_model = %s "
            f"AND cardinality(c.embedding) = {dimensions} "
            f"ORDER BY {distance} LIMIT %s",
            [query_vector, settings.HUB_EMBEDDING_MODEL, query_vector, limit],
        )
        similarities = {
            chunk_id: float(similarity)
            for chunk_id, similarity in cursor.fetchall()
            if float(similarity) >= settings.HUB_KNOWLEDGE_MIN_SIMILARITY
        }
    chunks = KnowledgeChunk.objects.select_related("document").in_bulk(list(similarities))
    ranked = sorted(similarities.items(), key=lambda pair: -pair[1])
    return [
        PassageMatch(
            document=chunks[chunk_id].document,
            text=chunks[chunk_id].text,
            score=similarity,
            method=VECTOR,
        )
        for chunk_id, similarity in ranked
        if chunk_id in chunks
    ]


def _full_text_search(text: str, limit: int) -> list[PassageMatch]:
    query = _query(text)
    if query is None:
        return []
    rows = (
        KnowledgeChunk.objects.select_related("document")
        .filter(document__enabled=True, search_vector=query)
        .annotate(rank=SearchRank(F("search_vector"), query))
        .filter(rank__gte=MIN_RANK)
        .order_by("-rank", "title", "position")[:limit]
    )
    matches = [
        PassageMatch(document=row.document, text=row.text, score=float(row.rank), method=FULL_TEXT)
        for row in rows
    ]
    if matches:
        return matches
    # Documents never chunked (written around the services, before the index job ran) are
    # still found, whole.
    return [
        PassageMatch(
            document=match.document, text=match.document.body, score=match.rank, method=FULL_TEXT
        )
        for match in knowledge_search(text=text, limit=limit)
    ]


def knowledge_passages_search(*, text: str, limit: int = 3) -> list[PassageMatch]:
    """The passages of enabled documents that best answer `text`, best first: nearest by
    embedding when vector search is on and chunks are embedded, else (or when the embeddings
    API fails, or nothing is similar enough) by full-text rank."""
    if vector_search_enabled() and llm_configured():
        try:
            matches = _vector_search(text, limit)
        except LlmUnavailable as unavailable:
            logger.warning(
                "question not embedded; knowledge search falls back to full text",
                extra={"reason": unavailable.reason},
            )
            matches = []
        if matches:
            return matches
    return _full_text_search(text, limit)
