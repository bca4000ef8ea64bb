"""The worker's cost per answered message, alone: webhooks are stored through the web tier with no
Celery worker running, then one process answers them one at a time, in process, through the
task Celery would run. Nothing of the hub's competes with it for the cores while it works (other
load on the machine still inflates its CPU time: compare runs made minutes apart).

    python -m bench.workeronly [--messages 600] [--contacts 200] [--profile cprofile.out]
                               [--profile-sight first_of_tenant] [--without-agent] [--tenants 1]

`HUB_BENCH_NO_HEAP_FREEZE=1` leaves out the worker's heap freeze (hub/heap.py, change 23) to
weigh it.

`--without-agent` gives the channel no agent: what storing an inbound message costs alone, the
ingest scenario's worker.

`--tenants N` spreads the webhooks over N tenants, answered in the order they came, each under
its tenant as Celery runs it. The figures are also split by what the process had seen before
each message: nothing of its tenant, the tenant but not the contact (a new conversation), or
both; the first two apart are what a process's first sight of a tenant costs.
`--profile-sight` profiles only the messages of one of those.

Prints per answered message: the worker's CPU milliseconds (and those spent collecting
garbage), those of the PostgreSQL backend serving it, the write-ahead log the server wrote
meanwhile, and SQL statements (by kind, and by the
line of the hub's code that ran them); with `--profile` it writes cProfile's statistics (CPU
time) and prints the top of them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from bench.scenarios import drive, reply_counts, targets_of
from bench.stack import ROOT, StackOptions, running

SLUG = "bench_worker"


def cpu_seconds(pid: int) -> float:
    """A local process's CPU time (PostgreSQL's backend serving the worker: same machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SIGHTS = ("first_of_tenant", "first_of_contact", "seen_before")


def _sender(body: str) -> str:
    """Who sent a stored WhatsApp webhook (the driver's shape: one message per body)."""
    return str(json.loads(body)["entry"][0]["changes"][0]["value"]["messages"][0]["from"])


def _answer_all(profile: str, slugs: list[str], profile_sight: str) -> dict[str, Any]:
    """In the child, with the stack's environment: runs every stored event's task in turn."""
    import cProfile
    import pstats
    import time

    import django

    django.setup()
    import gc

    from hub.heap import heap_freeze

    # What each worker process does once started (hub.celery's worker_process_init).
    if not os.environ.get("HUB_BENCH_NO_HEAP_FREEZE"):
        heap_freeze()
    gc_seconds = [0.0, 0.0]

    def gc_timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_seconds[1] = time.perf_counter()
        else:
            gc_seconds[0] += time.perf_counter() - gc_seconds[1]

    gc.callbacks.append(gc_timed)
    from django.db import DatabaseError, connection
    from django_tenants.utils import tenant_context

    from channels_app.models import InboundEvent
    from channels_app.tasks import inbound_event_process_task
    from tenants.models import Tenant

    statements: Counter[str] = Counter()
    sites: Counter[str] = Counter()
    root = str(ROOT)

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        kind = sql.lstrip().split(" ", 1)[0].upper()
        statements[kind] += 1
        # Where in the hub's own code the statement comes from: its innermost frame there.
        frame: FrameType | None = sys._getframe(1)
        while frame and not (
            frame.f_code.co_filename.startswith(root)
            and "/.venv/" not in frame.f_code.co_filename
            and "/bench/" not in frame.f_code.co_filename
        ):
            frame = frame.f_back
        if frame is not None:
            where = frame.f_code.co_filename.removeprefix(root + "/")
            sites[f"{kind} {where}:{frame.f_lineno} {frame.f_code.co_name}"] += 1
        return execute(sql, params, many, context)

    tenants = {
        tenant.schema_name: tenant for tenant in Tenant.objects.filter(schema_name__in=slugs)
    }
    events: list[tuple[Any, Tenant, str, str]] = []
    for tenant in tenants.values():
        with tenant_context(tenant):
            events += [
                (received_at, tenant, str(pk), _sender(body))
                for pk, received_at, body in InboundEvent.objects.values_list(
                    "pk", "received_at", "body"
                )
            ]
    events.sort(key=lambda event: event[0])
    # The first few warm up imports, connections and caches; they are not counted.
    warm, measured = events[:20], events[20:]
    seen: set[Any] = set()

    def sight_of(tenant: Tenant, sender: str) -> str:
        """Whether the process's first sight of the tenant, else of the contact (a new
        conversation costs more statements wherever it happens)."""
        sight = (
            "first_of_tenant"
            if tenant.schema_name not in seen
            else "first_of_contact"
            if (tenant.schema_name, sender) not in seen
            else "seen_before"
        )
        seen.update((tenant.schema_name, (tenant.schema_name, sender)))
        return sight

    def answer(tenant: Tenant, event_id: str) -> None:
        """Runs the event's task as Celery runs it (tenant-schemas-celery: under the tenant row,
        not just its schema)."""
        with tenant_context(tenant):
            inbound_event_process_task(event_id)

    for _, tenant, event_id, sender in warm:
        sight_of(tenant, sender)
        answer(tenant, event_id)
    # CPU time, not wall time: waiting for PostgreSQL or the fakes is not the worker's cost.
    profiler = cProfile.Profile(time.process_time) if profile else None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), pg_current_wal_lsn()")
        (backend, wal_started) = cursor.fetchone()
    # Per message, split by what the process had seen before it: [worker, backend, count].
    split = {sight: [0.0, 0.0, 0] for sight in SIGHTS}
    started_backend = cpu_seconds(backend)
    started_cpu, started = time.process_time(), time.perf_counter()
    gc_seconds[0] = 0.0
    with connection.execute_wrapper(count):
        for _, tenant, event_id, sender in measured:
            sight = sight_of(tenant, sender)
            profiled = profiler if profile_sight in ("", sight) else None
            if profiled:
                profiled.enable()
            cpu_before, backend_before = time.process_time(), cpu_seconds(backend)
            answer(tenant, event_id)
            split[sight][0] += time.process_time() - cpu_before
            split[sight][1] += cpu_seconds(backend) - backend_before
            split[sight][2] += 1
            if profiled:
                profiled.disable()
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    backend_cpu = cpu_seconds(backend) - started_backend
    with connection.cursor() as cursor:
        # The server's write-ahead log written meanwhile (all of it: run on a quiet server).
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", [wal_started])
        (wal_bytes,) = cursor.fetchone()
        # What the backend holds after serving every tenant (its catalog caches grow with each
        # schema it touches). Readable by superusers and pg_read_all_stats only.
        try:
            cursor.execute("SELECT sum(total_bytes)::bigint FROM pg_backend_memory_contexts")
            (backend_bytes,) = cursor.fetchone()
        except DatabaseError:
            backend_bytes = None
    if profiler:
        profiler.dump_stats(profile)
        pstats.Stats(profile).sort_stats("tottime").print_stats(40)
    by_sight = {
        sight: {
            "messages": n,
            "cpu_ms_per_message": round(1000 * worker / max(1, n), 2),
            "postgres_cpu_ms_per_message": round(1000 * postgres / max(1, n), 2),
        }
        for sight, (worker, postgres, n) in split.items()
    }
    return {
        "tenants": len(tenants),
        "by_sight": by_sight,
        "messages": len(measured),
        "cpu_ms_per_message": round(1000 * cpu / max(1, len(measured)), 2),
        "postgres_cpu_ms_per_message": round(1000 * backend_cpu / max(1, len(measured)), 2),
        "postgres_backend_memory_mb": backend_bytes and round(backend_bytes / 2**20, 1),
        "wal_kb_per_message": round(float(wal_bytes) / 1024 / max(1, len(measured)), 2),
        "gc_ms_per_message": round(1000 * gc_seconds[0] / max(1, len(measured)), 2),
        "wall_ms_per_message": round(1000 * wall / max(1, len(measured)), 2),
        "statements_per_message": round(sum(statements.values()) / max(1, len(measured)), 1),
        "statements_by_kind": {
            kind: round(n / max(1, len(measured)), 2) for kind, n in statements.most_common()
        },
        "statements_by_site": {
            site: round(n / max(1, len(measured)), 2) for site, n in sites.most_common(120)
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument("--profile", default="", help="write cProfile statistics here")
    parser.add_argument("--profile-sight", default="", choices=("", *SIGHTS))
    parser.add_argument("--without-agent", action="store_true", help="store, do not answer")
    parser.add_argument("--tenants", type=int, default=1)
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        slugs = os.environ["HUB_BENCH_SLUGS"].split(",")
        figures = _answer_all(args.profile, slugs, args.profile_sight)
        Path(args.child).write_text(json.dumps(figures))
        return
    seed = {
        "groups": [
            {
                "prefix": SLUG,
                "count": args.tenants,
                "agent": not args.without_agent,
                "channels": 1,
                "credits": 10**8,
            }
        ]
    }
    options = StackOptions(web_processes=1, worker_processes=0, beat=False)
    with running(options, seed=seed) as (stack, seeded):
        rate = 100
        drive(
            stack,
            {
                "kind": "webhooks",
                "port": stack.web_port,
                "targets": targets_of(seeded, SLUG),
                "rate": rate,
                "duration": args.messages / rate,
                "prefix": "worker",
                "contacts": args.contacts,
                "connections": 32,
            },
            "workeronly",
        )
        slugs = [tenant["slug"] for tenant in seeded["tenants"][SLUG]]
        profile = str(Path(args.profile).resolve()) if args.profile else ""
        out = stack.run_dir / "workeronly.json"
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.workeronly",
                "--child",
                str(out),
                "--profile",
                profile,
                "--profile-sight",
                args.profile_sight,
            ],
            cwd=ROOT,
            # One connection of its own, as a prefork worker's child has, so that the backend
            # measured is the one that did the work: with a pool, a connection given back
            # while the model answers (change 43) may come back as another.
            env=dict(
                stack.env,
                PYTHONPATH=str(ROOT),
                HUB_BENCH_SLUGS=",".join(slugs),
                HUB_DB_POOL_MAX_SIZE="0",
            ),
            capture_output=True,
            text=True,
        )
        if child.returncode:
            raise SystemExit(child.stderr[-4000:])
        if profile:
            print(child.stdout[child.stdout.find("   ncalls") :])
        figures = json.loads(out.read_text())
        counts: Counter[str] = Counter()
        for slug in slugs:
            counts.update(reply_counts(stack, slug))
        figures["counts"] = dict(counts)
        print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
