"""PostgreSQL restarts under a running web process: meanwhile every request gets a 503 in the
contract's error shape (never a stack trace), and the process recovers by itself.

A private PostgreSQL (the pgserver wheel, as `make run` starts one) is restarted, never the one
the suite or anyone else uses.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from hub.embedded import EmbeddedPostgres
from tests import support

# Well formed, so the API looks it up in the database (and answers 401 when it is up).
UNKNOWN_KEY = "hub_AbCdEfGh_" + "x" * 40


def _pg_ctl(postgres: EmbeddedPostgres, *args: str) -> None:
    from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

    try:
        pg_ctl(list(args), pgdata=postgres.data_dir, user=postgres._run_as(), timeout=90)
    except subprocess.CalledProcessError as error:
        log = (postgres.data_dir / "server.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"pg_ctl {' '.join(args)} failed; the server's log:\n{log}") from error


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    postgres = EmbeddedPostgres(tmp_path / "pg")
    postgres.start()
    try:
        yield postgres
    finally:
        postgres.stop()


def _get(url: str, path: str) -> requests.Response:
    return requests.get(
        f"{url}{path}", headers={"Authorization": f"Bearer {UNKNOWN_KEY}"}, timeout=15
    )


def test_a_postgres_restart_answers_503_in_shape_and_recovers(
    private_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    env = support.child_env(DATABASE_URL=private_postgres.url)
    migrate = support.start_process(
        [sys.executable, "manage.py", "migrate_schemas", "--shared", "--noinput", "-v", "0"],
        log_path=tmp_path / "migrate.log",
        env=env,
    )
    assert migrate.popen.wait(120) == 0, migrate.log()
    port = support.free_port()
    server = support.start_process(
        support.uvicorn_command(port),
        log_path=tmp_path / "web.log",
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        support.wait_until(lambda: _ready(url), timeout=60, what="the server")
        assert _get(url, "/api/v1/conversations/").status_code == 401
        options = f"-c listen_addresses=127.0.0.1 -p {private_postgres.port} -k ''"
        _pg_ctl(private_postgres, "-w", "-m", "fast", "stop")
        answers = [_get(url, "/api/v1/conversations/") for _ in range(3)]
        webhook = requests.post(
            f"{url}/webhooks/some_tenant/whatsapp/{'t' * 32}/",
            data=b"{}",
            timeout=15,
            headers={"Content-Type": "application/json"},
        )
        readyz = requests.get(f"{url}/readyz", timeout=15)
        _pg_ctl(
            private_postgres,
            "-w",
            "-o",
            options,
            "-l",
            str(private_postgres.data_dir / "server.log"),
            "start",
        )
        recovered = support.wait_until(
            lambda: _get(url, "/api/v1/conversations/").status_code == 401,
            timeout=30,
            what="the web process to recover",
        )
    finally:
        server.stop()
    for answer in [*answers, webhook]:
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "service_unavailable"
        assert answer.headers["Retry-After"]
        assert "Traceback" not in answer.text
    assert readyz.status_code == 503
    assert "database" in readyz.text
    assert recovered


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.ConnectionError:
        time.sleep(0.1)
        return False
