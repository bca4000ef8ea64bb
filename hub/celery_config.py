"""Celery's configuration: the `CELERY_*` Django settings, copied once (by Celery's own names),
when Celery first reads its configuration (after Django's settings are loaded). Celery looks
several settings up for every task it publishes; read through Django's lazy settings object
each lookup cost a chain of attribute lookups, about a sixth of a publish (docs/performance.md,
change 19). Settings changed at run time (tests' `settings` fixture) therefore do not reach
Celery."""

from __future__ import annotations

from typing import Any

from django.conf import settings

# Read by Celery's Django fixup under this very name.
_AS_NAMED = {"CELERY_DB_REUSE_MAX"}


def _celery_name(name: str) -> str:
    """Celery's own lowercase name for a `CELERY_*` setting. Under the `CELERY` namespace five of
    them (`CELERY_TIMEZONE`, `CELERY_TASK_SERIALIZER`, …) are also Celery 3's names, and every
    worker start warned that they were deprecated."""
    return name if name in _AS_NAMED else name.removeprefix("CELERY_").lower()


CELERY: dict[str, Any] = {
    _celery_name(name): getattr(settings, name)
    for name in dir(settings)
    if name.startswith("CELERY_")
}
