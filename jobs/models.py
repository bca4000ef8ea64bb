from __future__ import annotations

import uuid

from django.db import models


class JobRun(models.Model):
    """One run of a periodic job in this tenant's schema: the audit record of what it did."""

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.CharField(max_length=100, db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    # The beat tick this run answers (None for a run started by hand): one run per slot.
    slot = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "slot"],
                name="job_run_slot_unique",
                condition=models.Q(slot__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return f"{self.job} {self.status} at {self.started_at:%Y-%m-%d %H:%M}"
