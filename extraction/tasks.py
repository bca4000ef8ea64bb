from __future__ import annotations

from celery import shared_task

from extraction import services
from extraction.models import Extraction
from hub.exceptions import NotFoundError


@shared_task(name="extraction.run", acks_late=True)
def extraction_run_task(conversation_id: str) -> str | None:
    # Failures are not retried here: the run records them with a backoff that the dispatcher
    # honours, which survives a lost worker as a Celery countdown would not.
    try:
        extraction = services.extraction_run(
            conversation_id=conversation_id, trigger=Extraction.Trigger.IDLE
        )
    except NotFoundError:
        return None
    return str(extraction.pk) if extraction else None
