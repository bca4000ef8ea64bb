"""Long-lived processes freeze what start-up loaded, so the collector's full passes skip it."""

from __future__ import annotations

import json

import pytest

from hub.heap import YOUNG_THRESHOLD
from tests import support

REPORT = (
    "import gc, json; print(json.dumps({'frozen': gc.get_freeze_count(), "
    "'tracked': len(gc.get_objects()), 'young': gc.get_threshold()[0]}))"
)


def _heap_after(code: str) -> dict[str, int]:
    return json.loads(support.python_output(f"{code}\n{REPORT}"))


def test_a_web_process_freezes_what_it_loaded_with_the_urlconfs() -> None:
    heap = _heap_after("import hub.asgi")
    # Django, DRF and the hub's modules are well over 100,000 objects; a full collection now
    # walks only what was made after them.
    assert heap["frozen"] > 100_000
    assert heap["tracked"] < heap["frozen"] / 20
    assert heap["young"] == YOUNG_THRESHOLD


# A prefork pool's children are told by `worker_process_init`; a threads or solo pool runs the
# tasks in the worker process, told by `worker_ready`.
@pytest.mark.parametrize("signal", ["worker_process_init", "worker_ready"])
def test_a_worker_process_freezes_when_celery_starts_it(signal: str) -> None:
    heap = _heap_after(
        f"from celery.signals import {signal}\n"
        "from hub.celery import app\n"
        "app.loader.import_default_modules()\n"
        f"{signal}.send(sender=None)"
    )
    assert heap["frozen"] > 100_000
    assert heap["young"] == YOUNG_THRESHOLD


def test_without_the_freeze_a_process_keeps_everything_in_the_collectors_walk() -> None:
    heap = _heap_after("import django, os; django.setup()")
    assert heap["frozen"] == 0
    assert heap["young"] != YOUNG_THRESHOLD
