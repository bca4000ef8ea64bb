"""The Celery app. tenant-schemas-celery puts the current schema in every task's headers and
switches to it before the task runs; the request id travels the same way."""

from __future__ import annotations

import os
from typing import Any

from celery.signals import (
    before_task_publish,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_ready,
)
from django.db import close_old_connections
from tenant_schemas_celery.app import CeleryApp
from tenant_schemas_celery.task import TenantTask

from hub.broker import broker_transport_install
from hub.context import request_id_var
from hub.heap import heap_freeze

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings.local")


class HubTask(TenantTask):
    """Switches to the task's tenant taken from the process memo (hub/memo.py), which every
    change to a tenant clears within a second. tenant-schemas-celery's own cache expires after
    a fixed time: with a thousand tenants a worker process meets each one only every few
    minutes, so it read the tenant row before nearly every task."""

    abstract = True

    @classmethod
    def get_tenant_for_schema(cls, schema_name: str) -> Any:
        from tenants.selectors import tenant_get_by_schema

        return tenant_get_by_schema(schema_name=schema_name)


broker_transport_install()
app = CeleryApp("hub", task_cls=HubTask)
app.config_from_object("hub.celery_config:CELERY")
app.autodiscover_tasks()

REQUEST_ID_HEADER = "hub_request_id"


@worker_process_init.connect  # a prefork pool's child, which runs the tasks
@worker_ready.connect  # the worker process itself, which runs them in a threads or solo pool
def _freeze_heap(**_kwargs: Any) -> None:
    heap_freeze()


@worker_init.connect  # before the pool starts: its processes inherit what is loaded here
def _load_model_client(**_kwargs: Any) -> None:
    from agents.llm import llm_client_load

    llm_client_load()


@before_task_publish.connect
def _attach_request_id(headers: dict[str, Any] | None = None, **_kwargs: Any) -> None:
    request_id = request_id_var.get()
    if headers is not None and request_id and REQUEST_ID_HEADER not in headers:
        headers[REQUEST_ID_HEADER] = request_id


# The token goes on the task's request, not the task: a task object is shared by the threads
# of a threads pool, its request is the one this thread runs.
REQUEST_ID_RESET_ATTRIBUTE = "hub_request_id_token"


@task_prerun.connect
def _restore_request_id(task: Any = None, **_kwargs: Any) -> None:
    request = task.request if task is not None else None
    headers = getattr(request, "headers", None) or {}
    request_id = headers.get(REQUEST_ID_HEADER) or getattr(request, REQUEST_ID_HEADER, None)
    setattr(request, REQUEST_ID_RESET_ATTRIBUTE, request_id_var.set(request_id))


@task_prerun.connect
def _usable_database_connection(task: Any = None, **_kwargs: Any) -> None:
    """What Django does at every request start, at every task start: drops a connection that is
    broken (PostgreSQL restarted) or past CONN_MAX_AGE, so a reused one is never a dead one. An
    eager task runs inside its caller's transaction and keeps its connection."""
    if not getattr(getattr(task, "request", None), "is_eager", False):
        close_old_connections()


@task_postrun.connect
def _database_connection_returned(task: Any = None, **_kwargs: Any) -> None:
    """A pooled connection goes back to the pool as a task ends, not as the thread's next task
    starts: an idle thread of a threads pool holds none. A persistent one is only checked."""
    if not getattr(getattr(task, "request", None), "is_eager", False):
        close_old_connections()


@task_postrun.connect
def _forget_request_id(task: Any = None, **_kwargs: Any) -> None:
    request = task.request if task is not None else None
    token = getattr(request, REQUEST_ID_RESET_ATTRIBUTE, None)
    if token is not None:
        request_id_var.reset(token)
        setattr(request, REQUEST_ID_RESET_ATTRIBUTE, None)
