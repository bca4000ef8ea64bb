"""`python -m bench`: every result of a run names the commit it measured, the results written
before it by the same run notwithstanding."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import bench.__main__ as bench_main
from bench.scenarios import Result


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_each_result_of_a_run_of_several_scenarios_names_the_clean_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "bench" / "results"
    results.mkdir(parents=True)
    (results / "first.json").write_text("{}\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "results of an earlier run")
    head = _git(tmp_path, "rev-parse", "HEAD")
    monkeypatch.delenv("HUB_BENCH_COMMIT", raising=False)
    monkeypatch.setattr(bench_main, "ROOT", tmp_path)
    monkeypatch.setattr(bench_main, "results_dir", lambda: results)
    monkeypatch.setattr(
        bench_main,
        "SCENARIOS",
        {name: (lambda quick, n=name: Result(n)) for name in ("first", "second")},
    )

    assert bench_main.main(["first", "second"]) == 0

    for name in ("first", "second"):
        assert json.loads((results / f"{name}.json").read_text())["commit"] == head
