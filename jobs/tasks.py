from __future__ import annotations

from datetime import datetime
from typing import Any

from celery import Task, shared_task
from celery.signals import before_task_publish
from django.utils import timezone

from jobs import services

DISPATCH_TASK = "jobs.dispatch"
SLOT_HEADER = "hub_job_slot"


@before_task_publish.connect(sender=DISPATCH_TASK)
def _stamp_slot(headers: dict[str, Any] | None = None, **_kwargs: Any) -> None:
    """Beat publishes here: the slot is taken from the clock of the process that publishes, so
    a message that waits in the queue keeps the slot of the tick it was sent for."""
    if headers is not None and SLOT_HEADER not in headers:
        headers[SLOT_HEADER] = services.job_slot(at=timezone.now()).isoformat()


def _slot(task: Task[Any, Any]) -> datetime | None:
    request = task.request
    headers = getattr(request, "headers", None) or {}
    value = headers.get(SLOT_HEADER) or getattr(request, SLOT_HEADER, None)
    return datetime.fromisoformat(value) if value else None


@shared_task(name=DISPATCH_TASK, bind=True)
def job_dispatch_task(self: Task[Any, Any], job: str) -> int:
    return services.job_dispatch(job=job, slot=_slot(self))


@shared_task(name="jobs.dispatch_batch")
def job_dispatch_batch_task(job: str, slot: str | None, schemas: list[str]) -> int:
    return services.job_dispatch_batch(
        job=job, slot=datetime.fromisoformat(slot) if slot else None, schemas=schemas
    )


@shared_task(name="jobs.run")
def job_run_task(job: str, slot: str | None = None) -> str | None:
    run = services.job_run(job=job, slot=datetime.fromisoformat(slot) if slot else None)
    return str(run.pk) if run else None
