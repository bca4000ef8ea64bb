"""Where the process finds its configuration: the environment first, then files under `var/`.

Settings import this module, and so do the launcher and `manage.py`: no Django imports here.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    return Path(os.environ.get("HUB_VAR_DIR") or BASE_DIR / "var")


def embedded_state_path() -> Path:
    return var_dir() / "embedded.json"


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def read_embedded_state() -> dict[str, Any] | None:
    """The URLs of the embedded servers that a running launcher wrote, if it is still alive."""
    path = embedded_state_path()
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid")
    if not isinstance(pid, int) or not _process_alive(pid):
        return None
    return state


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def service_url(name: str) -> str | None:
    """`DATABASE_URL` or `REDIS_URL` from the environment, else from a running launcher."""
    value = os.environ.get(name)
    if value:
        return value
    state = read_embedded_state()
    if state:
        return state.get(name.lower())
    return None


def _read_or_create(path: Path, make: Any) -> str:
    """Reads a generated secret, creating it once; concurrent first runs agree on one value."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = path.with_name(f".{path.name}.{os.getpid()}")
    candidate.write_text(make())
    candidate.chmod(0o600)
    try:
        os.link(candidate, path)
    except FileExistsError:
        pass
    finally:
        candidate.unlink(missing_ok=True)
    return path.read_text().strip()


def generated_secret_key() -> str:
    return _read_or_create(var_dir() / "secret_key", lambda: secrets.token_urlsafe(50))


def generated_field_keys() -> str:
    return _read_or_create(var_dir() / "field_keys", lambda: Fernet.generate_key().decode())
