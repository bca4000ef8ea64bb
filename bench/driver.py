"""The load driver: a process of its own (`python -m bench.driver SPEC.json OUT.json`), so its
CPU is not the server's and its event loop is not the one being measured.

Kinds of load (`spec["kind"]`):
- `webhooks`: signed WhatsApp Cloud webhooks, open loop at `rate` per second for `duration`
  seconds (or `count` in all), spread over targets (tenant channels) and contacts. Latency is
  counted from the moment a request was due, so a server that falls behind is not hidden by a
  driver that waits for it (coordinated omission). `mix` adds bad requests (drills).
- `api`: closed loop, `concurrency` clients reading the given paths with an API key.
- `sockets`: holds `count` WebSockets open and measures frames (see `bench.sockets`).

Every load is bounded by its count and duration and goes to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from bench.http import Pool

HOST = "127.0.0.1"


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary_ms(values: list[float]) -> dict[str, float | None]:
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 2)

    return {
        "p50_ms": ms(percentile(values, 50)),
        "p90_ms": ms(percentile(values, 90)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(max(values) if values else None),
    }


def whatsapp_body(
    *, phone_number_id: str, sender: str, message_id: str, text: str, timestamp: int
) -> bytes:
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "100000000000001",
                    "changes": [
                        {
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15555550100",
                                    "phone_number_id": phone_number_id,
                                },
                                "contacts": [
                                    {"profile": {"name": f"Bench {sender}"}, "wa_id": sender}
                                ],
                                "messages": [
                                    {
                                        "from": sender,
                                        "id": message_id,
                                        "timestamp": str(timestamp),
                                        "text": {"body": text},
                                        "type": "text",
                                    }
                                ],
                            },
                            "field": "messages",
                        }
                    ],
                }
            ],
        },
        separators=(",", ":"),
    ).encode()


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _bad_request(kind: str, target: dict[str, Any], good: bytes, other: dict[str, Any]) -> tuple:
    """(path, body, headers, expected status) for one kind of bad input."""
    path = f"/webhooks/{target['slug']}/whatsapp/{target['token']}/"
    json_headers = {"Content-Type": "application/json"}
    if kind == "unsigned":
        return path, good, json_headers, 401
    if kind == "bad_signature":
        return path, good, {**json_headers, "X-Hub-Signature-256": sign(good, "wrong")}, 401
    if kind == "malformed":
        body = b'{"object": "whatsapp_business_account", "entry": [}'
        return (
            path,
            body,
            {**json_headers, "X-Hub-Signature-256": sign(body, target["app_secret"])},
            400,
        )
    if kind == "oversized":
        body = b'{"pad": "' + b"x" * (1024 * 1024 + 10) + b'"}'
        return (
            path,
            body,
            {**json_headers, "X-Hub-Signature-256": sign(body, target["app_secret"])},
            413,
        )
    if kind == "wrong_type":
        return (
            path,
            good,
            {"Content-Type": "text/plain", "X-Hub-Signature-256": sign(good, target["app_secret"])},
            415,
        )
    if kind == "cross_tenant":
        # Another tenant's slug with this tenant's channel token: the same 404 as any unknown.
        path = f"/webhooks/{other['slug']}/whatsapp/{target['token']}/"
        return (
            path,
            good,
            {**json_headers, "X-Hub-Signature-256": sign(good, target["app_secret"])},
            404,
        )
    if kind == "unknown_token":
        path = f"/webhooks/{target['slug']}/whatsapp/{'x' * 32}/"
        return (
            path,
            good,
            {**json_headers, "X-Hub-Signature-256": sign(good, target["app_secret"])},
            404,
        )
    raise ValueError(kind)


BAD_KINDS = [
    "unsigned",
    "bad_signature",
    "malformed",
    "oversized",
    "wrong_type",
    "cross_tenant",
    "unknown_token",
]


async def webhooks(spec: dict[str, Any]) -> dict[str, Any]:
    port = spec["port"]
    targets = spec["targets"]
    rate = float(spec["rate"])
    duration = float(spec.get("duration", 0)) or None
    total = int(spec.get("count") or (rate * (duration or 0)))
    contacts = int(spec.get("contacts", 1000))
    prefix = spec.get("prefix", "bench")
    repeats = int(spec.get("repeats", 1))
    bad_share = float(spec.get("bad_share", 0))
    shuffle = bool(spec.get("shuffle", False))
    rng = random.Random(spec.get("seed", 1))  # noqa: S311 - the shape of load, not secrets
    pool = Pool(HOST, port, int(spec.get("connections", 128)))
    timeout = float(spec.get("timeout", 30))

    plan: list[tuple[int, int]] = [(i, r) for i in range(total) for r in range(repeats)]
    if shuffle:
        # Redeliveries out of order, though never before the first copy could exist.
        rng.shuffle(plan)
    interval = 1 / (rate * repeats) if rate else 0

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    accepted: dict[int, float] = {}
    bad_results: dict[str, dict[str, int]] = {}
    errors: dict[str, int] = {}
    now = int(time.time())

    async def one(index: int, copy: int, due: float, wall: float) -> None:
        target = targets[index % len(targets)]
        sender = f"1555{index % contacts:07d}"
        text = f"{prefix}-{index}"
        body = whatsapp_body(
            phone_number_id=target["phone_number_id"],
            sender=sender,
            message_id=f"wamid.{prefix}.{index}",
            text=text,
            timestamp=now,
        )
        bad_kind = None
        if bad_share and copy == 0 and rng.random() < bad_share:
            bad_kind = rng.choice(BAD_KINDS)
            other = targets[(index + 1) % len(targets)] if len(targets) > 1 else spec["other"]
            path, body, headers, expected = _bad_request(bad_kind, target, body, other)
        else:
            path = f"/webhooks/{target['slug']}/whatsapp/{target['token']}/"
            headers = {
                "Content-Type": "application/json",
                "X-Hub-Signature-256": sign(body, target["app_secret"]),
            }
        try:
            response = await pool.request("POST", path, body, headers, timeout=timeout)
            status = response.status
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as error:
            errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
            return
        elapsed = time.perf_counter() - due
        if bad_kind is not None:
            row = bad_results.setdefault(bad_kind, {"sent": 0, "as_expected": 0})
            row["sent"] += 1
            row["as_expected"] += status == expected
            return
        latencies.append(elapsed)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if 200 <= status < 300 and index not in accepted:
            accepted[index] = wall

    tasks: set[asyncio.Task[None]] = set()
    started = time.perf_counter()
    wall_started = time.time()
    for position, (index, copy) in enumerate(plan):
        due = started + position * interval
        delay = due - time.perf_counter()
        if delay > 0.002:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(index, copy, due, wall_started + position * interval))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    pool.close()
    good = sum(statuses.values())
    return {
        "sent": len(plan),
        "elapsed_s": round(elapsed, 2),
        "rate_target": rate,
        "rate_achieved": round(good / elapsed, 1) if elapsed else None,
        "statuses": statuses,
        "errors": errors,
        "bad": bad_results,
        "latency": summary_ms(latencies),
        # index -> wall time it was due (for pairing with the fake's send times)
        "accepted": {str(k): v for k, v in accepted.items()},
    }


async def api(spec: dict[str, Any]) -> dict[str, Any]:
    pool = Pool(HOST, spec["port"], spec.get("concurrency", 8))
    headers = {"Authorization": f"Bearer {spec['api_key']}"}
    paths: list[str] = spec["paths"]
    deadline = time.perf_counter() + float(spec["duration"])
    limit = int(spec.get("count", 10**9))
    stagger = float(spec.get("stagger", 0))
    by_name: dict[str, list[float]] = {}
    statuses: dict[str, int] = {}
    done = 0

    async def client(offset: int) -> None:
        nonlocal done
        await asyncio.sleep(offset * stagger)
        i = offset
        while time.perf_counter() < deadline and done < limit:
            name, path = paths[i % len(paths)].split(" ", 1)
            i += 1
            started = time.perf_counter()
            response = await pool.request("GET", path, headers=headers)
            by_name.setdefault(name, []).append(time.perf_counter() - started)
            statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(spec.get("concurrency", 8))))
    elapsed = time.perf_counter() - started
    pool.close()
    return {
        "requests": done,
        "elapsed_s": round(elapsed, 2),
        "rate_achieved": round(done / elapsed, 1),
        "statuses": statuses,
        "by_page": {
            name: summary_ms(values) | {"n": len(values)} for name, values in by_name.items()
        },
        "latency": summary_ms([v for values in by_name.values() for v in values]),
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    import uvloop

    kind = spec["kind"]
    if kind == "webhooks":
        result = uvloop.run(webhooks(spec))
    elif kind == "api":
        result = uvloop.run(api(spec))
    elif kind == "sockets":
        from bench.sockets import run as sockets_run

        result = uvloop.run(sockets_run(spec))
    else:
        raise SystemExit(f"unknown load kind {kind!r}")
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
