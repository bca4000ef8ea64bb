"""What the periodic jobs' checks cost with many tenants: every job beat runs each minute asks
each active tenant whether it has work (jobs/registry.py), so a thousand idle tenants cost a
thousand checks per job and minute.

    python -m bench.jobchecks [--tenants 1000] [--rounds 3]

Provisions the tenants (as `bench tenants` does, no load), then in one process runs every
every-minute job's check in every tenant, as `jobs.dispatch_batch` runs them, `--rounds`
times: the first round meets each tenant's tables for the first time on its connection, the
later ones show a worker that knows them. Prints per tenant and round the process's CPU, its
PostgreSQL backend's CPU and the wall time, in all and by job.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.stack import ROOT, StackOptions, running
from bench.workeronly import cpu_seconds

PREFIX = "bench_checks"


def _check_all(rounds: int) -> list[dict[str, Any]]:
    """In the child, with the stack's environment."""
    import time

    import django

    django.setup()
    from django.db import connection
    from django_tenants.utils import schema_context

    from jobs.registry import JOB_PENDING
    from jobs.schedules import DEFAULT_SCHEDULES
    from tenants.models import Tenant

    jobs = [job for job, minute, _ in DEFAULT_SCHEDULES.values() if minute == "*"]
    checks = [(job, JOB_PENDING[job]) for job in jobs if job in JOB_PENDING]
    schemas = list(
        Tenant.objects.filter(schema_name__startswith=PREFIX).values_list("schema_name", flat=True)
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
    results = []
    for _ in range(rounds):
        by_job: dict[str, float] = {}
        started_cpu, started_backend = time.process_time(), cpu_seconds(backend)
        started = time.perf_counter()
        pending = 0
        for job, check in checks:
            job_started = time.process_time()
            for schema in schemas:
                with schema_context(schema):
                    pending += bool(check())
            by_job[job] = time.process_time() - job_started
        per_tenant = 1000 / max(1, len(schemas))
        results.append(
            {
                "tenants": len(schemas),
                "cpu_ms_per_tenant": round(per_tenant * (time.process_time() - started_cpu), 2),
                "postgres_cpu_ms_per_tenant": round(
                    per_tenant * (cpu_seconds(backend) - started_backend), 2
                ),
                "wall_ms_per_tenant": round(per_tenant * (time.perf_counter() - started), 2),
                "pending": pending,
                "cpu_ms_per_tenant_by_job": {
                    job: round(per_tenant * seconds, 3) for job, seconds in by_job.items()
                },
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        Path(args.child).write_text(json.dumps(_check_all(args.rounds)))
        return
    seed = {"groups": [{"prefix": PREFIX, "count": args.tenants, "channels": 1}]}
    options = StackOptions(web_processes=1, worker_processes=0, beat=False)
    with running(options, seed=seed) as (stack, _seeded):
        out = stack.run_dir / "jobchecks.json"
        command = [sys.executable, "-m", "bench.jobchecks", "--child", str(out)]
        child = subprocess.run(
            [*command, "--rounds", str(args.rounds)],
            cwd=ROOT,
            env=dict(stack.env, PYTHONPATH=str(ROOT)),
            capture_output=True,
            text=True,
        )
        if child.returncode:
            raise SystemExit(child.stderr[-4000:])
        print(json.dumps(json.loads(out.read_text()), indent=1))


if __name__ == "__main__":
    main()
