"""`make run` as a user runs it: the launcher on its own embedded servers in a fresh var/ folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import requests

from tests import support


def _launcher_env(var_dir: Path, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        HUB_VAR_DIR=str(var_dir),
        HUB_PORT=str(port),
        HUB_WORKER_CONCURRENCY="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _processes_using(var_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "environ"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            environ = process.info["environ"] or {}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if str(var_dir) in cmdline or environ.get("HUB_VAR_DIR") == str(var_dir):
            found.append(process)
    return [p for p in found if p.pid != os.getpid()]


def test_make_run_starts_serves_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    port = support.free_port()
    env = _launcher_env(var_dir, port)
    launcher = support.start_process(
        [sys.executable, "-m", "hub.launcher", "run"], log_path=tmp_path / "run.log", env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            if launcher.popen.poll() is not None:
                raise AssertionError(f"launcher exited:\n{launcher.log()}")
            try:
                return requests.get(f"{url}/healthz", timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        support.wait_until(up, timeout=240, interval=0.5, what="make run to serve /healthz")
        assert requests.get(f"{url}/readyz", timeout=10).status_code == 200
        assert requests.get(f"{url}/api/docs/", timeout=10).status_code == 200
        admin = requests.get(f"{url}/admin/", timeout=10, allow_redirects=False)
        assert admin.status_code == 302
        assert "/admin/login/" in admin.headers["Location"]
        demo_admin = requests.get(f"{url}/t/demo/admin/login/", timeout=10)
        assert demo_admin.status_code == 200
        # The demo tenant's web chat, embedded by its one script tag, which the hub serves.
        demo_chat = requests.get(f"{url}/t/demo/chat-demo/", timeout=10)
        assert demo_chat.status_code == 200
        assert 'role="alert"' not in demo_chat.text
        widget = requests.get(f"{url}/static/hub/widget.js", timeout=10)
        assert widget.status_code == 200
        assert f"{url}/t/demo/chat-demo/" in launcher.log()
        log = launcher.log()
        assert "superuser 'admin'" in log
        assert "demo tenant created" in log

        # A second launcher in the same folder refuses and touches nothing.
        second = subprocess.run(
            [sys.executable, "-m", "hub.launcher", "run"],
            env=env,
            cwd=support.ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "already running" in second.stderr

        # manage.py in another terminal reaches the same embedded servers.
        shell = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "shell",
                "-c",
                "from tenants.selectors import tenant_list_active; "
                "print(sorted(t.schema_name for t in tenant_list_active()))",
            ],
            env=env,
            cwd=support.ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shell.returncode == 0, shell.stderr
        assert "['demo']" in shell.stdout
    finally:
        os.killpg(launcher.popen.pid, signal.SIGINT)
        try:
            launcher.popen.wait(90)
        except subprocess.TimeoutExpired:
            launcher.stop(signal.SIGKILL)
            raise
    assert launcher.popen.returncode == 0, launcher.log()
    try:
        support.wait_until(
            lambda: not _processes_using(var_dir), timeout=60, what="every process to exit"
        )
    except AssertionError:
        left = [(p.pid, " ".join(p.cmdline())) for p in _processes_using(var_dir)]
        raise AssertionError(f"processes left behind: {left}") from None
    assert not (var_dir / "embedded.json").exists()


def test_free_ports_are_picked_below_the_ephemeral_range_and_skip_taken_ones(monkeypatch) -> None:
    import socket

    from hub import embedded

    ports = {embedded.free_port() for _ in range(50)}
    assert all(embedded.FREE_PORT_LOW <= port < embedded._ephemeral_low() for port in ports)
    assert len(ports) > 40  # picked at random, not handed out in turn
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        free = embedded.free_port()
        picks = iter([taken - embedded.FREE_PORT_LOW, free - embedded.FREE_PORT_LOW])
        monkeypatch.setattr(embedded.secrets, "randbelow", lambda _span: next(picks))
        assert embedded.free_port() == free
