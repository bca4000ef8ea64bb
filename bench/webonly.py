"""The web tier alone on signed webhooks: the stack without Celery, so its cost is the web's.

    python -m bench.webonly --rate 100 --seconds 15 [--web-processes 1] [--workers 0] [--profile]
                            [--tenants 1] [--passes 1]

`--tenants N` spreads the webhooks over N tenants (one channel each), as `bench tenants` does.
`--passes K` drives the same load K times, one after the other, into the same processes: the
first pass pays for the processes' first sight of each tenant, the later ones show the steady
state. Each pass gets its own figures (and with `--profile` its own stacks).

Prints what the driver measured and the web processes' CPU per webhook. `--profile` records
py-spy (GIL-holding samples, collapsed stacks) of every web worker into the run directory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.scenarios import drive, targets_of
from bench.stack import Stack, StackOptions, running


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--web-processes", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--tenants", type=int, default=1)
    parser.add_argument("--passes", type=int, default=1)
    args = parser.parse_args()
    options = StackOptions(
        web_processes=args.web_processes, worker_processes=args.workers, beat=False
    )
    seed = {"groups": [{"prefix": "bench_web", "count": args.tenants, "channels": 1}]}
    with running(options, seed=seed) as (stack, seeded):
        web_workers = stack.processes()["web"][1:]  # the gunicorn arbiter does no requests
        passes = []
        for index in range(args.passes):
            passes.append(_pass(stack, seeded, args, web_workers, index, profile=args.profile))
        print(json.dumps(passes[0] if args.passes == 1 else passes, indent=1))


def _pass(
    stack: Stack,
    seeded: dict[str, Any],
    args: argparse.Namespace,
    web_workers: list[Any],
    index: int,
    *,
    profile: bool,
) -> dict[str, Any]:
    before = stack.cpu_seconds()
    postgres_before = stack.postgres_cpu_seconds()
    spies = []
    if profile:
        # Beside this interpreter first: a venv run by its path is not on PATH.
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy"
        )
        if spy is None:
            raise SystemExit("py-spy is missing: pip install -e '.[bench]'")
        for process in web_workers:
            stacks = stack.run_dir / f"web-{process.pid}.pass{index}.collapsed.txt"
            command = [spy, "record", "-p", str(process.pid), "-d", str(args.seconds)]
            command += ["-r", "200", "-f", "raw", "--gil", "--nonblocking", "-o", str(stacks)]
            spies.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
    out = drive(
        stack,
        {
            "kind": "webhooks",
            "port": stack.web_port,
            "targets": targets_of(seeded, "bench_web"),
            "rate": args.rate,
            "duration": args.seconds,
            # Each pass's webhooks are new events, not redeliveries of the last pass's.
            "prefix": f"web{index or ''}",
            "contacts": 2000,
            "connections": 64,
        },
        "webonly",
    )
    web_cpu = stack.cpu_seconds()["web"] - before["web"]
    postgres_cpu = stack.postgres_cpu_seconds() - postgres_before
    for spy_process in spies:
        spy_process.wait()
    return {
        "rate_offered": args.rate,
        "rate_achieved": out["rate_achieved"],
        "sent": out["sent"],
        "statuses": out["statuses"],
        "latency": out["latency"],
        "web_cpu_ms_per_webhook": round(1000 * web_cpu / max(1, out["sent"]), 2),
        "postgres_cpu_ms_per_webhook": round(1000 * postgres_cpu / max(1, out["sent"]), 2),
        "run_dir": str(stack.run_dir),
    }


if __name__ == "__main__":
    main()
