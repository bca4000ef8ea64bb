from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models


class KnowledgeDocument(models.Model):
    """A document the tenant's agents answer from (FAQ, policies, product notes)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=300)
    body = models.TextField()
    source_url = models.URLField(max_length=1000, blank=True)
    enabled = models.BooleanField(default=True)
    search_vector = models.GeneratedField(
        expression=SearchVector("title", weight="A", config="simple")
        + SearchVector("body", weight="B", config="simple"),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]
        indexes = [GinIndex(fields=["search_vector"], name="knowledge_search_gin")]

    def __str__(self) -> str:
        return self.title


class KnowledgeChunk(models.Model):
    """A passage of a document, the unit that is searched and cited. Rewritten whenever the
    document's title or body changes (`knowledge.services`); its embedding is filled in after
    commit. The vector is kept as a plain float array so it is never lost on a database without
    pgvector; where pgvector exists, search casts it to `vector` (and an index covers that cast)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    document = models.ForeignKey(KnowledgeDocument, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    # The document's title, repeated so full-text search weighs it like the document's own.
    title = models.CharField(max_length=300)
    text = models.TextField()
    search_vector = models.GeneratedField(
        expression=SearchVector("title", weight="A", config="simple")
        + SearchVector("text", weight="B", config="simple"),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    embedding = ArrayField(models.FloatField(), null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=100, blank=True, editable=False)
    embedded_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["document", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "position"], name="knowledge_chunk_position_unique"
            )
        ]
        indexes = [GinIndex(fields=["search_vector"], name="knowledge_chunk_search_gin")]

    def __str__(self) -> str:
        return f"{self.title} #{self.position}"
