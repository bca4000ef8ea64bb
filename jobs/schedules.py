"""Every periodic job, in one place. `manage.py bootstrap` writes them into django-celery-beat's
tables once; after that the platform admin edits them and a redeploy keeps the edits.

Presence itself lives in Redis with TTLs and needs no cleanup; `presence.sweep` puts right
what a socket that died with its process leaves behind: an operator still stored online, a
visitor the team was never told went offline (inbox/presence.py)."""

from __future__ import annotations

import json

from django_celery_beat.models import CrontabSchedule, PeriodicTask

# name -> (job, crontab: minute, hour)
DEFAULT_SCHEDULES: dict[str, tuple[str, str, str]] = {
    "Prune job-run history": ("job_runs.prune", "17", "3"),
    "Wake snoozed conversations": ("conversations.wake_snoozed", "*", "*"),
    "Sweep stranded inbound events": ("channels.sweep_inbound", "*", "*"),
    "Sweep stuck outbound deliveries": ("channels.sweep_deliveries", "*/5", "*"),
    "Sweep unprocessed conversations and uncharged replies": ("processing.sweep", "*", "*"),
    "Deliver due webhooks": ("webhooks.deliver_due", "*", "*"),
    "Poll IMAP mailboxes": ("channels.poll_imap", "*", "*"),
    "Poll Signal accounts": ("channels.poll_signal", "*", "*"),
    "Extract leads from quiet conversations": ("extraction.dispatch", "*", "*"),
    "Apply the data retention policy": ("retention.apply", "41", "2"),
    "Deliver due reminders": ("automation.reminders_deliver", "*", "*"),
    "Sweep presence left by dead sockets": ("presence.sweep", "*", "*"),
    "Chunk and embed knowledge documents": ("knowledge.index", "*/5", "*"),
}


def schedules_ensure() -> int:
    created = 0
    for name, (job, minute, hour) in DEFAULT_SCHEDULES.items():
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*"
        )
        _, was_created = PeriodicTask.objects.get_or_create(
            name=name,
            defaults={"task": "jobs.dispatch", "crontab": crontab, "args": json.dumps([job])},
        )
        created += was_created
    return created
