"""WebSockets through the real ASGI server (uvicorn), tenant resolved into scope."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tenants.models import Tenant


async def _ping(url: str) -> dict:
    async with websockets.connect(url) as socket:
        await socket.send(json.dumps({"type": "ping"}))
        return json.loads(await asyncio.wait_for(socket.recv(), 10))


async def _close_code(url: str) -> int | None:
    try:
        async with websockets.connect(url) as socket:
            await asyncio.wait_for(socket.recv(), 10)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    except websockets.InvalidStatus as refused:
        return refused.response.status_code
    return None


def test_socket_runs_in_its_tenants_schema(committed_db, live_server_url) -> None:
    ws = live_server_url.replace("http://", "ws://")
    for info in committed_db.values():
        reply = asyncio.run(_ping(f"{ws}/t/{info.slug}/ws/health/"))
        assert reply == {"type": "pong", "tenant": info.slug, "schema": info.slug}


def test_unknown_or_suspended_tenant_is_refused(committed_db, live_server_url) -> None:
    ws = live_server_url.replace("http://", "ws://")
    assert asyncio.run(_close_code(f"{ws}/t/nobody_here/ws/health/")) in {4404, 403}
    slug = committed_db["b"].slug
    Tenant.objects.filter(schema_name=slug).update(is_active=False)
    try:
        assert asyncio.run(_close_code(f"{ws}/t/{slug}/ws/health/")) in {4403, 403}
    finally:
        Tenant.objects.filter(schema_name=slug).update(is_active=True)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_frame"),
        (json.dumps({"type": "dance"}), "unknown_frame"),
    ],
)
def test_bad_frames_get_an_error_frame_and_the_socket_stays(
    committed_db, live_server_url, frame, code
) -> None:
    ws = live_server_url.replace("http://", "ws://")

    async def exchange() -> tuple[dict, dict]:
        async with websockets.connect(f"{ws}/t/{committed_db['a'].slug}/ws/health/") as socket:
            await socket.send(frame)
            error = json.loads(await asyncio.wait_for(socket.recv(), 10))
            await socket.send(json.dumps({"type": "ping"}))
            return error, json.loads(await asyncio.wait_for(socket.recv(), 10))

    error, pong = asyncio.run(exchange())
    assert error["type"] == "error"
    assert error["code"] == code
    assert pong["type"] == "pong"
