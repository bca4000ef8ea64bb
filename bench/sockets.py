"""The sockets scenario: visitor WebSockets of the web chat (`/ws/webchat/`) held open at once,
and the fan-out of committed messages to them.

Visitors' sessions are minted by the seed (the session endpoint allows 30 a minute per address;
the bench is one address). Each session's conversation gets `per_conversation` sockets (the
same visitor in several tabs), so one message posted through the API reaches that many sockets:
messages per second times sockets per conversation = frames per second, without the API being the
bottleneck. Latency is from the message's `created_at` (stamped in its transaction, just before
the commit) to the frame's arrival at the driver, on the same clock.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
from datetime import datetime
from typing import Any

import websockets

from bench.driver import summary_ms
from bench.http import Pool
from bench.scenarios import Result, drive, load_average, register
from bench.stack import StackOptions, running

ORIGIN = "http://bench.example"


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Driver side: opens the sockets, holds them (the caller samples memory), then posts
    `messages` messages spread over the conversations at `rate` per second and counts the
    `message` frames that arrive."""
    port = spec["port"]
    sessions: list[dict[str, str]] = spec["sessions"]
    per_conversation = int(spec["per_conversation"])
    sockets: list[tuple[str, Any]] = []
    failures: dict[str, int] = {}
    opening = asyncio.Semaphore(100)

    async def open_one(session: dict[str, str]) -> None:
        async with opening:
            try:
                socket = await websockets.connect(
                    f"ws://127.0.0.1:{port}/ws/webchat/?token={session['token']}",
                    origin=ORIGIN,  # type: ignore[arg-type]
                    open_timeout=60,
                    ping_interval=None,
                    max_queue=None,
                )
                sockets.append((session["conversation"], socket))
            except Exception as error:
                failures[type(error).__name__] = failures.get(type(error).__name__, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(open_one(s) for s in sessions for _ in range(per_conversation)))
    open_seconds = time.perf_counter() - started

    latencies: list[float] = []
    received: dict[str, int] = {}
    last_frame = [0.0]

    async def read(socket: Any) -> None:
        try:
            async for raw in socket:
                frame = json.loads(raw)
                if frame.get("type") != "message":
                    continue
                message = frame["message"]
                text = (message.get("content") or {}).get("text", "")
                if not text.startswith("fan-"):
                    continue
                created = datetime.fromisoformat(message["created_at"]).timestamp()
                latencies.append(time.time() - created)
                received[text] = received.get(text, 0) + 1
                last_frame[0] = time.perf_counter()
        except websockets.ConnectionClosed:
            return

    readers = [asyncio.create_task(read(socket)) for _, socket in sockets]
    # The driver stands in for 10,000 browsers, each with a collector of its own: here one
    # collector walked all their sockets, pausing every read (70 ms every few seconds, up to
    # 0.4 s for a full collection) and adding that to the latency it measured. What it holds
    # is frozen and the collector is off until the frames are in; reference counting frees
    # the frames as they are read.
    gc.collect()
    gc.freeze()
    gc.disable()
    held_file = spec.get("held_file")
    if held_file:
        with open(held_file, "w") as handle:
            handle.write(str(len(sockets)))
        await asyncio.sleep(float(spec.get("hold_seconds", 5)))

    # Messages from the API (an integrator or operator answering), round robin over the
    # conversations that have sockets.
    pool = Pool("127.0.0.1", port, 32)
    headers = {"Authorization": f"Bearer {spec['api_key']}", "Content-Type": "application/json"}
    conversations = sorted({conversation for conversation, _ in sockets})
    total, rate = int(spec["messages"]), float(spec["rate"])
    statuses: dict[str, int] = {}

    async def post(index: int) -> None:
        conversation = conversations[index % len(conversations)]
        body = json.dumps({"content": {"type": "text", "text": f"fan-{index}"}}).encode()
        response = await pool.request(
            "POST", f"/api/v1/conversations/{conversation}/messages/", body, headers
        )
        statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1

    sending = time.perf_counter()
    posts = []
    for index in range(total):
        delay = sending + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        posts.append(asyncio.create_task(post(index)))
    await asyncio.gather(*posts)
    expected = total * per_conversation
    deadline = time.perf_counter() + float(spec.get("drain_seconds", 30))
    while sum(received.values()) < expected and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
    # From the first post to the last frame in.
    window = (last_frame[0] or time.perf_counter()) - sending
    pool.close()
    await asyncio.gather(*(socket.close() for _, socket in sockets), return_exceptions=True)
    for reader in readers:
        reader.cancel()
    gc.enable()
    frames = sum(received.values())
    return {
        "opened": len(sockets),
        "failed": failures,
        "open_seconds": round(open_seconds, 1),
        "messages_posted": statuses,
        "frames_expected": expected,
        "frames_received": frames,
        "frames_twice": sum(1 for v in received.values() if v > per_conversation),
        "frames_per_s": round(frames / window, 1) if window else None,
        "commit_to_frame": summary_ms(latencies),
    }


def sockets(quick: bool) -> Result:
    result = Result("sockets")
    conversations, per_conversation = (20, 25) if quick else (100, 100)
    # 55 messages/s to 100 sockets each: 5,500 frames/s offered, so that a delivery rate of
    # 5,000/s can show (at exactly 5,000 offered, the posting alone fills the window).
    messages, rate = (100, 20) if quick else (1650, 55)
    seed = {
        "groups": [{"prefix": "bench_ws", "count": 1, "channels": 0}],
        "webchat": {"slug": "bench_ws", "origin": ORIGIN, "sessions": conversations},
    }
    with running(StackOptions(beat=False), seed=seed) as (stack, seeded):
        rss_before = sum(stack.rss().values())
        held_file = stack.run_dir / "held"
        samples: list[int] = []

        def sample() -> None:
            while not held_file.exists():
                time.sleep(0.2)
            time.sleep(2)
            samples.append(sum(stack.rss().values()))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out = drive(
            stack,
            {
                "kind": "sockets",
                "port": stack.web_port,
                "sessions": seeded["webchat"]["sessions"],
                "per_conversation": per_conversation,
                "api_key": seeded["tenants"]["bench_ws"][0]["api_key"],
                "messages": messages,
                "rate": rate,
                "held_file": str(held_file),
                "hold_seconds": 4,
                "drain_seconds": 10 if quick else 60,
            },
            "sockets",
        )
        sampler.join(timeout=10)
        held_rss = samples[0] if samples else None
        gib = (held_rss or 0) / 2**30
        wanted = conversations * per_conversation
        result.details.update(load=out, rss_before=rss_before, rss_held=held_rss)
        result.figures = {
            "sockets_held": out["opened"],
            "total_rss_gib": round(gib, 3),
            "rss_per_socket_kib": round(
                ((held_rss or 0) - rss_before) / max(1, out["opened"]) / 1024, 1
            ),
            "frames_per_s": out["frames_per_s"],
            "frames_received": out["frames_received"],
            "frames_expected": out["frames_expected"],
            "commit_to_frame_p50_ms": out["commit_to_frame"]["p50_ms"],
            "commit_to_frame_p99_ms": out["commit_to_frame"]["p99_ms"],
            "load_avg": load_average(),
        }
        result.target("visitor sockets held", out["opened"], wanted, at_most=False)
        result.target("total RSS GiB while held", round(gib, 3), 3)
        result.target("frames/s delivered", out["frames_per_s"], 5000, at_most=False)
        result.target("commit → frame p99 ms", out["commit_to_frame"]["p99_ms"], 100)
        result.target("frames lost", out["frames_expected"] - out["frames_received"], 0)
    return result


register("sockets", sockets)
