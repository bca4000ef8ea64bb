from __future__ import annotations

from celery import shared_task

from jobs import services


@shared_task(name="jobs.dispatch")
def job_dispatch_task(job: str) -> int:
    return services.job_dispatch(job=job)


@shared_task(name="jobs.run")
def job_run_task(job: str) -> str | None:
    run = services.job_run(job=job)
    return str(run.pk) if run else None
