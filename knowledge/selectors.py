"""Reads on the knowledge base."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db.models import F

from knowledge.models import KnowledgeDocument

# Below this rank a document is not an answer, however it ranks against the others.
MIN_RANK = 0.01


@dataclass(frozen=True)
class KnowledgeMatch:
    document: KnowledgeDocument
    rank: float


def knowledge_search(*, text: str, limit: int = 3) -> list[KnowledgeMatch]:
    """The enabled documents that best match `text`, by PostgreSQL full-text rank. Any word may
    match (the question's words are OR-ed), so a plain question finds its answer."""
    words = [
        word for word in "".join(c if c.isalnum() else " " for c in text).split() if len(word) > 2
    ]
    if not words:
        return []
    query = SearchQuery(" OR ".join(words), config="simple", search_type="websearch")
    rows = (
        KnowledgeDocument.objects.filter(enabled=True, search_vector=query)
        .annotate(rank=SearchRank(F("search_vector"), query))
        .filter(rank__gte=MIN_RANK)
        .order_by("-rank", "title")[:limit]
    )
    return [KnowledgeMatch(document=row, rank=float(row.rank)) for row in rows]
