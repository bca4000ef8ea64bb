"""`python -m bench [SCENARIO ...] [--quick]` (what `make bench` runs): each scenario on a fresh
production-like stack, one table at the end, `bench/results/<scenario>.json` per scenario."""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

# Imported for what they register: each adds its scenario to SCENARIOS.
import bench.soak
import bench.sockets  # noqa: F401 - both bind `bench`; this one counts as unused
from bench.scenarios import SCENARIOS, Result, load_average, results_dir
from bench.stack import ROOT

ORDER = ["ingest", "end-to-end", "tenants", "sockets", "api", "soak"]


def _commit() -> str:
    # A run from an exported tree (no .git) names its commit through the environment.
    if os.environ.get("HUB_BENCH_COMMIT"):
        return os.environ["HUB_BENCH_COMMIT"]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}{'+dirty' if dirty else ''}"


def _write(
    result: Result, *, commit: str, quick: bool, seconds: float, load_before: list[float]
) -> Path:
    document: dict[str, Any] = {
        "scenario": result.scenario,
        "quick": quick,
        "commit": commit,
        "cores": os.cpu_count(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(seconds, 1),
        "load_avg_before": load_before,
        "load_avg_after": load_average(),
        "figures": result.figures,
        "targets": result.targets,
        "notes": result.notes,
        "details": result.details,
    }
    name = f"{result.scenario}{'-quick' if quick else ''}.json"
    path = results_dir() / name
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path


def _table(rows: list[tuple[str, dict[str, Any], list[float]]]) -> str:
    lines = [
        f"{'scenario':<11} {'measure':<44} {'value':>12} {'target':>12}  met  load avg (1/5/15)"
    ]
    lines.append("-" * len(lines[0]))
    for scenario, target, load in rows:
        met = {True: "yes", False: "NO", None: "n/a"}[target["met"]]
        value = target["value"]
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        lines.append(
            f"{scenario:<11} {target['name'][:44]:<44} {shown:>12} {target['target']:>12}  "
            f"{met:<4} {'/'.join(str(v) for v in load)}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("scenarios", nargs="*", help=f"default: all ({', '.join(ORDER)})")
    parser.add_argument("--quick", action="store_true", default=os.environ.get("QUICK") == "1")
    options = parser.parse_args(argv)
    # A stopped bench still stops its stack (the `finally` of every `running()`).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = options.scenarios or [name for name in ORDER if name in SCENARIOS]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    # Read before the first result is written: each one written makes the tree dirty.
    commit = _commit()
    rows: list[tuple[str, dict[str, Any], list[float]]] = []
    failed = []
    for name in names:
        print(f"bench: {name}{' (quick)' if options.quick else ''} …", file=sys.stderr, flush=True)
        load_before = load_average()
        started = time.monotonic()
        try:
            result = SCENARIOS[name](options.quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        path = _write(
            result,
            commit=commit,
            quick=options.quick,
            seconds=time.monotonic() - started,
            load_before=load_before,
        )
        print(
            f"bench: {name} done in {time.monotonic() - started:.0f}s -> {path.relative_to(ROOT)}",
            file=sys.stderr,
            flush=True,
        )
        rows += [(name, target, load_average()) for target in result.targets]
    print(_table(rows))
    print(f"cores: {os.cpu_count()}  commit: {commit}")
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
