from __future__ import annotations

from typing import Any

from rest_framework import serializers

from hub.api import StrictSerializerMixin
from knowledge.models import KnowledgeDocument

# A body this long is a book, not a document to answer from: split it.
MAX_BODY_CHARS = 200_000


class KnowledgeDocumentSerializer(StrictSerializerMixin, serializers.ModelSerializer[Any]):
    body = serializers.CharField(max_length=MAX_BODY_CHARS, trim_whitespace=False)
    chunks = serializers.IntegerField(
        source="chunk_count",
        read_only=True,
        help_text="How many passages the document was cut into for search.",
    )
    embedded_chunks = serializers.IntegerField(
        source="embedded_chunk_count",
        read_only=True,
        help_text="Passages with an embedding (vector search); the rest are found by full text.",
    )

    class Meta:
        model = KnowledgeDocument
        fields = [
            "id",
            "title",
            "body",
            "source_url",
            "enabled",
            "chunks",
            "embedded_chunks",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_body(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value


class KnowledgeListFilterSerializer(serializers.Serializer[Any]):
    q = serializers.CharField(required=False, max_length=500, help_text="Full-text search.")
    enabled = serializers.BooleanField(required=False, allow_null=True, default=None)


class KnowledgeSearchInputSerializer(serializers.Serializer[Any]):
    q = serializers.CharField(max_length=2000, help_text="A question, as a contact would ask it.")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=10, default=3)


class PassageSerializer(serializers.Serializer[Any]):
    document = serializers.UUIDField(source="document.id")
    title = serializers.CharField(source="document.title")
    source_url = serializers.CharField(source="document.source_url")
    text = serializers.CharField()
    score = serializers.FloatField(help_text="Cosine similarity (vector) or full-text rank.")
    method = serializers.ChoiceField(choices=["vector", "full_text"])


class PassageListSerializer(serializers.Serializer[Any]):
    results = PassageSerializer(many=True)
