"""The garbage collector in a long-lived process (web or worker).

CPython's full collection walks every tracked object. After start-up a web process holds about
200,000 (Django, DRF, the hub's modules and URLconfs), and a full collection then took 110 ms,
once every 150 or so list pages: the p99 of every request waiting in that process. Frozen
objects are left out of collections (they are still freed by reference counting), so a full
collection walks only what requests and tasks left behind, a few milliseconds.
"""

from __future__ import annotations

import gc
from importlib import import_module

from django.conf import settings

# Collections of the youngest generation after this many allocations net of frees instead of
# CPython's 700: a list page allocates tens of thousands of objects, nearly all freed by
# reference counting, so at 700 each page ran two collections that found almost nothing.
YOUNG_THRESHOLD = 7_000


def heap_freeze() -> None:
    """Loads what the first request would (the URLconfs, and through them the views), then
    freezes everything alive so that collections skip it."""
    for urlconf in (settings.ROOT_URLCONF, getattr(settings, "PUBLIC_SCHEMA_URLCONF", None)):
        if urlconf:
            import_module(urlconf)
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
