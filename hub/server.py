"""How the web processes serve HTTP and WebSockets: the uvicorn options every way of running
the hub shares (gunicorn's worker class in production, the `uvicorn` command elsewhere).

WebSocket frames go uncompressed. Browsers offer permessage-deflate on every socket and uvicorn
accepts it by default; each socket then compresses each frame with a compressor of its own, so a
message fanned out to a conversation's sockets is compressed once per socket: a ninth of a web
process's CPU in the sockets bench (docs/performance.md, change 30). The hub's frames are a few
hundred bytes of JSON; sending them as they are costs a little bandwidth and no CPU.
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker as _UvicornWorker

OPTIONS: dict[str, Any] = {"ws_per_message_deflate": False}

# The same options as flags of the `uvicorn` command.
COMMAND_FLAGS = [
    part
    for name, value in OPTIONS.items()
    for part in (f"--{name.replace('_', '-')}", str(value).lower())
]


class UvicornWorker(_UvicornWorker):
    """gunicorn's worker class for the hub: `gunicorn -k hub.server.UvicornWorker`."""

    CONFIG_KWARGS = {**_UvicornWorker.CONFIG_KWARGS, **OPTIONS}
