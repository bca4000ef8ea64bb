"""Celery's configuration: the `CELERY_*` Django settings, copied once, when Celery first reads
its configuration (after Django's settings are loaded). Celery looks several settings up for
every task it publishes; read through Django's lazy settings object each lookup cost a chain of
attribute lookups, about a sixth of a publish (docs/performance.md, change 19). Settings
changed at run time (tests' `settings` fixture) therefore do not reach Celery."""

from __future__ import annotations

from typing import Any

from django.conf import settings

CELERY: dict[str, Any] = {
    name: getattr(settings, name) for name in dir(settings) if name.startswith("CELERY_")
}
