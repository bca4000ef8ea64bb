"""The knowledge base's periodic job."""

from __future__ import annotations

from typing import Any

from jobs.registry import tenant_job
from knowledge.selectors import knowledge_index_pending
from knowledge.services import knowledge_index_catch_up


@tenant_job("knowledge.index", pending=knowledge_index_pending)
def index() -> dict[str, Any]:
    """Chunks and embeds what saving left undone (an LLM outage, rows written around the
    services, a new embedding model)."""
    return knowledge_index_catch_up()
