from __future__ import annotations

from celery import shared_task

from knowledge import services

# A long document's chunks in one task; the knowledge.index job embeds whatever remains.
CHUNKS_PER_TASK = 256


@shared_task(name="knowledge.document_embed", acks_late=True)
def knowledge_document_embed_task(document_id: str) -> int:
    return services.knowledge_chunks_embed(document_id=document_id, limit=CHUNKS_PER_TASK)
