"""The knowledge base: documents cut into passages on save, embedded through the embeddings API
into pgvector where the database has it, and searched by similarity or by full text."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from agents.llm import llm_circuit_reset
from agents.models import LlmCall
from knowledge import selectors
from knowledge.models import KnowledgeChunk, KnowledgeDocument
from knowledge.selectors import knowledge_passages_search, pgvector_schema
from knowledge.services import (
    chunk_text,
    knowledge_chunks_embed,
    knowledge_document_create,
    knowledge_document_update,
    knowledge_index_catch_up,
)
from tests.factories import UserFactory
from tests.fake_openai import EMBEDDINGS
from tests.support import error_of

RETURNS = (
    "Orders can be returned within 30 days of delivery. Refunds are paid to the original "
    "payment method within five working days."
)
SHIPPING = "Parcels ship from Lisbon every weekday. Delivery to the islands takes a week."


def _has_pgvector() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        return cursor.fetchone() is not None


@pytest.fixture
def pgvector(tenant_a: Any) -> None:
    """The test needs pgvector (the embedded PostgreSQL has it; a server without it skips)."""
    if not _has_pgvector():
        pytest.skip("pgvector is not installed in this database (the embedded server has it)")


# --- Chunking ------------------------------------------------------------------------------


def test_a_long_body_is_cut_on_sentences_with_an_overlap() -> None:
    sentences = [f"Sentence number {n} talks about topic {n}." for n in range(40)]
    chunks = chunk_text(" ".join(sentences), size=300)
    assert len(chunks) > 3
    assert all(len(chunk) <= 300 for chunk in chunks)
    # Every sentence is kept, whole, and each cut repeats the sentence before it.
    for sentence in sentences:
        assert any(sentence in chunk for chunk in chunks)
    for previous, following in itertools.pairwise(chunks):
        assert following.startswith(previous.rsplit(". ", 1)[-1].strip())


def test_short_paragraphs_share_a_chunk_and_a_huge_sentence_is_split() -> None:
    assert chunk_text("One.\n\nTwo.\n\nThree.", size=300) == ["One.\n\nTwo.\n\nThree."]
    words = " ".join(["word"] * 200)
    pieces = chunk_text(words, size=100)
    assert all(len(piece) <= 100 for piece in pieces)
    assert " ".join(pieces).split() == words.split()


# --- The API -------------------------------------------------------------------------------


def test_documents_are_created_cut_and_listed_through_the_api(tenant_a) -> None:
    client = tenant_a.client()
    response = client.post(
        "/api/v1/knowledge/",
        {"title": "Returns", "body": RETURNS, "source_url": "https://shop.test/returns"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {
        "id",
        "title",
        "body",
        "source_url",
        "enabled",
        "chunks",
        "embedded_chunks",
        "created_at",
        "updated_at",
    }
    assert (body["chunks"], body["embedded_chunks"], body["enabled"]) == (1, 0, True)
    client.post("/api/v1/knowledge/", {"title": "Shipping", "body": SHIPPING}, format="json")
    listed = client.get("/api/v1/knowledge/").json()
    assert {d["title"] for d in listed["results"]} == {"Returns", "Shipping"}
    assert listed["next"] is None
    found = client.get("/api/v1/knowledge/", {"q": "parcels"}).json()["results"]
    assert [d["title"] for d in found] == ["Shipping"]
    assert client.get(f"/api/v1/knowledge/{body['id']}/").json()["title"] == "Returns"


def test_a_changed_body_is_cut_again_and_a_deleted_document_is_gone(tenant_a) -> None:
    client = tenant_a.client()
    created = client.post(
        "/api/v1/knowledge/", {"title": "Returns", "body": RETURNS}, format="json"
    ).json()
    url = f"/api/v1/knowledge/{created['id']}/"
    long_body = "\n\n".join(f"Paragraph {n}. " + "More words here. " * 60 for n in range(4))
    changed = client.patch(url, {"body": long_body}, format="json")
    assert changed.status_code == 200
    assert changed.json()["chunks"] > 1
    with tenant_a.schema():
        texts = list(
            KnowledgeChunk.objects.filter(document_id=created["id"]).values_list("text", flat=True)
        )
        assert all("Refunds" not in text for text in texts)
    assert client.patch(url, {"enabled": False}, format="json").json()["enabled"] is False
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    with tenant_a.schema():
        assert not KnowledgeChunk.objects.filter(document_id=created["id"]).exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"title": "x", "body": "   "}, "body"),
        ({"title": "x"}, "body"),
        ({"title": "", "body": "text"}, "title"),
        ({"title": "x", "body": "text", "source_url": "not a url"}, "source_url"),
        ({"title": "x", "body": "b" * 200_001}, "body"),
        ({"title": "x", "body": "text", "chunks": 5, "owner": "me"}, "owner"),
    ],
)
def test_bad_documents_are_refused_and_nothing_is_stored(tenant_a, payload, field) -> None:
    response = tenant_a.client().post("/api/v1/knowledge/", payload, format="json")
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert field in error["details"]
    with tenant_a.schema():
        assert not KnowledgeDocument.objects.exists()


def test_another_tenants_documents_are_invisible_and_untouchable(tenant_a, tenant_b) -> None:
    created = (
        tenant_a.client()
        .post("/api/v1/knowledge/", {"title": "Secret plans", "body": RETURNS}, format="json")
        .json()
    )
    other = tenant_b.client()
    url = f"/api/v1/knowledge/{created['id']}/"
    assert other.get("/api/v1/knowledge/").json()["results"] == []
    for response in (
        other.get(url),
        other.patch(url, {"title": "mine"}, format="json"),
        other.delete(url),
    ):
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"
    assert other.get("/api/v1/knowledge/search/", {"q": "refunds"}).json() == {"results": []}
    with tenant_a.schema():
        assert KnowledgeDocument.objects.get(pk=created["id"]).title == "Secret plans"
    assert Client().get(url).status_code == 401


def test_search_finds_passages_by_full_text_without_a_key(tenant_a) -> None:
    client = tenant_a.client()
    client.post(
        "/api/v1/knowledge/",
        {"title": "Returns", "body": RETURNS, "source_url": "https://shop.test/returns"},
        format="json",
    )
    client.post("/api/v1/knowledge/", {"title": "Shipping", "body": SHIPPING}, format="json")
    response = client.get("/api/v1/knowledge/search/", {"q": "how long do refunds take?"})
    assert response.status_code == 200
    (match,) = response.json()["results"][:1]
    assert match["title"] == "Returns"
    assert match["method"] == "full_text"
    assert match["source_url"] == "https://shop.test/returns"
    assert "five working days" in match["text"]
    assert client.get("/api/v1/knowledge/search/").status_code == 400


def test_documents_written_around_the_services_are_found_and_indexed_by_the_job(tenant_a) -> None:
    with tenant_a.schema():
        document = KnowledgeDocument.objects.create(title="Returns", body=RETURNS)
        # Found whole before the job cuts it…
        (match,) = knowledge_passages_search(text="refunds")
        assert match.document == document
        assert match.text == RETURNS
        assert knowledge_index_catch_up()["chunked"] == 1
        assert document.chunks.count() == 1
        assert knowledge_index_catch_up()["chunked"] == 0


def test_a_disabled_document_is_not_an_answer(tenant_a) -> None:
    with tenant_a.schema():
        document = knowledge_document_create(title="Returns", body=RETURNS)
        knowledge_document_update(document=document, enabled=False)
        assert knowledge_passages_search(text="refunds") == []


def test_the_admin_cuts_a_document_it_saves(tenant_a, client) -> None:
    with tenant_a.schema():
        client.force_login(UserFactory.create(username="kb_admin", is_superuser=True))
    response = client.post(
        f"/t/{tenant_a.slug}/admin/knowledge/knowledgedocument/add/",
        {
            "title": "Returns",
            "body": RETURNS,
            "source_url": "",
            "enabled": "on",
            "chunks-TOTAL_FORMS": "0",
            "chunks-INITIAL_FORMS": "0",
            "chunks-MIN_NUM_FORMS": "0",
            "chunks-MAX_NUM_FORMS": "1000",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    with tenant_a.schema():
        document = KnowledgeDocument.objects.get(title="Returns")
        assert document.chunks.count() == 1
    page = client.get(f"/t/{tenant_a.slug}/admin/knowledge/knowledgedocument/{document.pk}/change/")
    assert page.status_code == 200
    assert b"original payment method" in page.content


# --- Embeddings and vector search ----------------------------------------------------------


def test_without_pgvector_nothing_is_embedded_and_the_reason_is_logged(
    tenant_a, openai_fake, caplog, monkeypatch
) -> None:
    if _has_pgvector():
        pytest.skip("this database has pgvector")
    monkeypatch.setattr(selectors, "_pgvector_schemas", {})
    with caplog.at_level(logging.WARNING, logger="knowledge.selectors"), tenant_a.schema():
        assert pgvector_schema() is None
        knowledge_document_create(title="Returns", body=RETURNS)
        assert knowledge_chunks_embed(limit=10) == 0
        (match,) = knowledge_passages_search(text="refunds")
        assert match.method == "full_text"
    assert "pgvector is not installed in this database" in caplog.text
    assert not openai_fake.requests_to("/v1/embeddings")


def test_vector_search_can_be_switched_off(tenant_a, openai_fake, settings) -> None:
    settings.HUB_KNOWLEDGE_VECTOR_SEARCH = False
    with tenant_a.schema():
        knowledge_document_create(title="Returns", body=RETURNS)
        assert knowledge_chunks_embed(limit=10) == 0
        assert knowledge_passages_search(text="refunds")[0].method == "full_text"
    assert not openai_fake.requests_to("/v1/embeddings")


def test_saving_asks_a_worker_to_embed_after_commit(
    tenant_a, openai_fake, pgvector, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    sent: list[str] = []
    from knowledge import tasks

    monkeypatch.setattr(tasks.knowledge_document_embed_task, "delay", sent.append)
    with tenant_a.schema(), django_capture_on_commit_callbacks(execute=True):
        document = knowledge_document_create(title="Returns", body=RETURNS)
    assert sent == [str(document.pk)]


def test_chunks_are_embedded_and_found_by_similarity(
    tenant_a, openai_fake, pgvector, settings
) -> None:
    settings.HUB_KNOWLEDGE_MIN_SIMILARITY = 0.2
    with tenant_a.schema():
        returns = knowledge_document_create(title="Returns", body=RETURNS)
        knowledge_document_create(title="Shipping", body=SHIPPING)
        assert knowledge_chunks_embed(limit=100) == 2
        chunk = KnowledgeChunk.objects.get(document=returns)
        assert chunk.embedding is not None
        assert len(chunk.embedding) == 1536
        assert chunk.embedding_model == "text-embedding-3-small"
        # "payment" and "method" appear in the returns text only, and no full-text word of the
        # question ("reimbursed") does: only the vectors can find it.
        matches = knowledge_passages_search(text="which payment method is reimbursed")
        assert matches[0].document == returns
        assert matches[0].method == "vector"
        assert 0.2 <= matches[0].score <= 1.0
        assert LlmCall.objects.filter(purpose="embedding", outcome="ok").count() == 2
    embedded = openai_fake.requests_to("/v1/embeddings")
    assert sorted(embedded[0].json()["input"]) == [
        f"Returns\n\n{RETURNS}",
        f"Shipping\n\n{SHIPPING}",
    ]
    assert embedded[0].json()["dimensions"] == 1536
    assert embedded[1].json()["input"] == ["which payment method is reimbursed"]


def test_unchanged_passages_keep_their_embeddings(
    tenant_a, openai_fake, pgvector, settings
) -> None:
    settings.HUB_KNOWLEDGE_CHUNK_CHARS = 200
    added = "A second paragraph, long enough to be a passage of its own. " * 3
    with tenant_a.schema():
        document = knowledge_document_create(title="Returns", body=RETURNS)
        assert knowledge_chunks_embed(limit=10) == 1
        knowledge_document_update(document=document, body=f"{RETURNS}\n\n{added}")
        first, second = document.chunks.order_by("position")
        assert first.text == RETURNS
        assert first.embedding is not None
        assert second.embedding is None
        assert knowledge_chunks_embed(limit=10) == 1
    assert len(openai_fake.requests_to("/v1/embeddings")) == 2


def test_an_embeddings_outage_falls_back_to_full_text(tenant_a, openai_fake, pgvector) -> None:
    with tenant_a.schema():
        knowledge_document_create(title="Returns", body=RETURNS)
        openai_fake.fail(EMBEDDINGS, 500, times=3)
        assert knowledge_chunks_embed(limit=10) == 0
        assert not KnowledgeChunk.objects.exclude(embedding=None).exists()
        # Embedded once the API is back (and its circuit closed again); then the question
        # itself cannot be embedded.
        llm_circuit_reset(schema=tenant_a.slug)
        assert knowledge_chunks_embed(limit=10) == 1
        openai_fake.fail(EMBEDDINGS, 500, times=3)
        (match,) = knowledge_passages_search(text="refunds")
        assert match.method == "full_text"


def test_the_hnsw_index_exists_where_pgvector_does(tenant_a, pgvector) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
            [tenant_a.slug, "knowledge_chunk_embedding_hnsw"],
        )
        (definition,) = cursor.fetchone()
    assert "hnsw" in definition
    assert "vector_cosine_ops" in definition
