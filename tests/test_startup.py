"""What a process loads as it starts: the openai package only where model calls are made."""

from __future__ import annotations

from tests import support


def _loaded_after(code: str) -> bool:
    return support.python_output(f"{code}\nimport sys\nprint('openai' in sys.modules)") == "True"


def test_a_web_process_starts_without_the_openai_package() -> None:
    # A second of start-up and some 20 MB per web process (docs/performance.md, change 45).
    assert not _loaded_after("import hub.asgi\nimport hub.celery")


def test_a_worker_loads_it_before_its_pool_starts() -> None:
    code = (
        "from celery.signals import worker_init\n"
        "from hub.celery import app\n"
        "app.loader.import_default_modules()\n"
        "import sys\n"
        "assert 'openai' not in sys.modules\n"
        "worker_init.send(sender=None)"
    )
    assert _loaded_after(code)
