"""Embedding after a save, by a real Celery worker, in the document's tenant."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from agents.llm import llm_circuit_reset
from knowledge.models import KnowledgeChunk, KnowledgeDocument
from knowledge.services import knowledge_document_create
from tests import support
from tests.fake_openai import fake_openai


def test_a_saved_document_is_embedded_by_the_worker(
    committed_db: Any, tmp_path: Path, settings: Any
) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        if cursor.fetchone() is None:
            pytest.skip("pgvector is not installed in this database (the embedded server has it)")
    slug, other = committed_db["a"].slug, committed_db["b"].slug
    with fake_openai() as openai:
        env = {"HUB_TEST_OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai.base_url}
        settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "sk-test", openai.base_url
        llm_circuit_reset(schema=slug)
        try:
            os.environ.update(env)
            with support.celery_worker(tmp_path) as worker, schema_context(slug):
                # Autocommit: the save commits at once and hands the embedding to the worker.
                document = knowledge_document_create(title="Returns", body="Refunds in 5 days.")
                support.wait_until(
                    lambda: KnowledgeChunk.objects.filter(
                        document=document, embedding__isnull=False
                    ).exists(),
                    timeout=30,
                    what=f"the embedding\n{worker.log()}",
                )
            assert openai.requests_to("/v1/embeddings")[0].json()["input"] == [
                "Returns\n\nRefunds in 5 days."
            ]
            with schema_context(other):
                assert not KnowledgeDocument.objects.filter(title="Returns").exists()
        finally:
            for name in env:
                os.environ.pop(name, None)
            with schema_context(slug):
                KnowledgeDocument.objects.filter(title="Returns").delete()
