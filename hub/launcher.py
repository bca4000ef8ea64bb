"""`make run` and `make test`: one launcher for the whole local stack.

When `DATABASE_URL` / `REDIS_URL` are unset it starts the embedded PostgreSQL and Redis once, writes
their URLs to `var/embedded.json` (so `manage.py` in another terminal reaches the same servers),
hands them to every child process, and stops them on exit. A file lock in `var/` keeps a second
launcher from touching the same data.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import IO

from hub import env
from hub.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServerError
from hub.server import COMMAND_FLAGS

CHILD_STOP_SECONDS = 20


class AlreadyRunning(RuntimeError):
    pass


def _say(message: str) -> None:
    print(f"hub: {message}", flush=True)


@contextlib.contextmanager
def _launcher_lock() -> Iterator[IO[str]]:
    env.var_dir().mkdir(parents=True, exist_ok=True)
    handle = open(env.var_dir() / "launcher.lock", "a+")  # noqa: SIM115 - held for the lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        state = env.read_embedded_state() or {}
        pid = state.get("pid", "unknown")
        raise AlreadyRunning(
            f"Hub is already running from this folder (launcher pid {pid}). "
            "Stop it with Ctrl-C in its terminal, then try again."
        ) from None
    try:
        yield handle
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


@contextlib.contextmanager
def _services() -> Iterator[dict[str, str]]:
    """Yields the environment for children: the given URLs, or embedded servers started here."""
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    urls = {
        "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
        "REDIS_URL": os.environ.get("REDIS_URL", ""),
    }
    try:
        if not urls["DATABASE_URL"]:
            postgres = EmbeddedPostgres(env.var_dir() / "pg")
            _say("starting the embedded PostgreSQL (var/pg/)")
            postgres.start()
            started.append(postgres)
            urls["DATABASE_URL"] = postgres.url
        if not urls["REDIS_URL"]:
            redis = EmbeddedRedis(env.var_dir() / "redis")
            _say("starting the embedded Redis (var/redis/)")
            redis.start()
            started.append(redis)
            urls["REDIS_URL"] = redis.url
        state = {"pid": os.getpid(), "database_url": urls["DATABASE_URL"]}
        state["redis_url"] = urls["REDIS_URL"]
        env.embedded_state_path().write_text(json.dumps(state))
        yield urls
    finally:
        env.embedded_state_path().unlink(missing_ok=True)
        for server in reversed(started):
            server.stop()
        if started:
            _say("embedded servers stopped")


def _child_env(urls: dict[str, str], *, settings: str | None, **extra: str) -> dict[str, str]:
    """The children's environment; `settings=None` leaves the choice to pytest's configuration."""
    child = dict(os.environ)
    child.update(urls)
    if settings is None:
        child.pop("DJANGO_SETTINGS_MODULE", None)
    else:
        child.setdefault("DJANGO_SETTINGS_MODULE", settings)
    child.update(extra)
    return child


def _manage(child_env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], env=child_env, check=True)


def _stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + CHILD_STOP_SECONDS
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def run() -> int:
    host = env.env_str("HUB_HOST", "127.0.0.1")
    port = env.env_str("HUB_PORT", "8000")
    public_url = env.env_str("HUB_PUBLIC_URL", f"http://127.0.0.1:{port}")
    with _launcher_lock(), _services() as urls:
        child_env = _child_env(
            urls, settings="hub.settings.local", HUB_DEBUG=os.environ.get("HUB_DEBUG", "1")
        )
        child_env["HUB_PUBLIC_URL"] = public_url
        _say("migrating the public schema and every tenant schema")
        _manage(child_env, "migrate_schemas", "--noinput", "-v", "0")
        _manage(child_env, "bootstrap", "--demo")
        commands = {
            "web": [
                sys.executable,
                "-m",
                "uvicorn",
                "hub.asgi:application",
                *COMMAND_FLAGS,
                "--host",
                host,
                "--port",
                port,
                "--no-access-log",
            ],
            "worker": [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "hub",
                "worker",
                "--loglevel",
                "INFO",
            ],
            "beat": [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "hub",
                "beat",
                "--loglevel",
                "INFO",
                "--scheduler",
                "django_celery_beat.schedulers:DatabaseScheduler",
            ],
        }
        stopping = False

        def _on_signal(signum: int, _frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        children = [subprocess.Popen(cmd, env=child_env) for cmd in commands.values()]
        _say(
            "\n".join(
                [
                    "up. Ctrl-C stops everything.",
                    f"  platform admin   {public_url}/admin/",
                    f"  demo admin       {public_url}/t/demo/admin/",
                    f"  demo chat        {public_url}/t/demo/chat-demo/",
                    f"  API docs         {public_url}/api/docs/",
                    f"  readiness        {public_url}/readyz",
                ]
            )
        )
        exit_code = 0
        while not stopping:
            exited = [
                (name, child)
                for name, child in zip(commands, children, strict=True)
                if child.poll() is not None
            ]
            if exited:
                name, child = exited[0]
                _say(f"{name} exited with code {child.returncode}; stopping the rest")
                exit_code = 1
                break
            time.sleep(0.2)
        _say("stopping web, worker and beat")
        _stop_children(children)
    return exit_code


def test(pytest_args: list[str]) -> int:
    """Runs the suite on the given servers, or on the embedded pair (shared with `make run`)."""
    args = pytest_args or ["-n", env.env_str("HUB_TEST_WORKERS", "2")]
    state = env.read_embedded_state() or {}
    urls = {
        "DATABASE_URL": os.environ.get("DATABASE_URL") or state.get("database_url", ""),
        "REDIS_URL": os.environ.get("REDIS_URL") or state.get("redis_url", ""),
    }
    command = [sys.executable, "-m", "pytest", *args]
    if urls["DATABASE_URL"] and urls["REDIS_URL"]:
        return subprocess.run(command, env=_child_env(urls, settings=None)).returncode
    with _launcher_lock(), _services() as started_urls:
        child_env = _child_env(started_urls, settings=None)
        return subprocess.run(command, env=child_env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub.launcher")
    parser.add_argument("command", choices=["run", "test"])
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    rest = [arg for arg in options.rest if arg != "--"]
    env.generated_secret_key()
    env.generated_field_keys()
    try:
        return run() if options.command == "run" else test(rest)
    except AlreadyRunning as error:
        print(f"hub: {error}", file=sys.stderr)
        return 1
    except EmbeddedServerError as error:
        print(f"hub: {error}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as error:
        print(f"hub: {' '.join(map(str, error.cmd[1:]))} failed", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
