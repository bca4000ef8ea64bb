"""The web server as each way of running the hub starts it: WebSocket frames go uncompressed
(hub/server.py), whatever the client offers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import websockets

from tests import support


async def _extensions_and_pong(url: str) -> tuple[str | None, dict]:
    # The client offers permessage-deflate, as browsers do.
    async with websockets.connect(url, compression="deflate") as socket:
        await socket.send(json.dumps({"type": "ping"}))
        pong = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert socket.response is not None
        return socket.response.headers.get("Sec-WebSocket-Extensions"), pong


@pytest.mark.parametrize(
    "command", [support.uvicorn_command, support.gunicorn_command], ids=["uvicorn", "gunicorn"]
)
def test_websocket_frames_go_uncompressed(
    committed_db, tmp_path: Path, command: Callable[[int], list[str]]
) -> None:
    slug = committed_db["a"].slug
    with support.asgi_server(tmp_path, command) as url:
        ws = url.replace("http://", "ws://")
        extensions, pong = asyncio.run(_extensions_and_pong(f"{ws}/t/{slug}/ws/health/"))
    assert pong["type"] == "pong"
    assert extensions is None
