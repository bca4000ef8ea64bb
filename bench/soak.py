"""The soak scenario: ten minutes of mixed load (webhooks answered by the AI, and API reads), the
resident memory of every hub process sampled throughout; it must stay flat and nothing may fail."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench.scenarios import (
    Result,
    drive,
    load_average,
    register,
    reply_counts,
    targets_of,
    wait_for,
)
from bench.stack import StackOptions, running


def soak(quick: bool) -> Result:
    result = Result("soak")
    duration = 10 if quick else 600
    seed = {
        "groups": [
            {"prefix": "bench_soak", "count": 1, "agent": True, "channels": 2, "credits": 10**8}
        ]
    }
    with running(StackOptions(beat=not quick), seed=seed) as (stack, seeded):
        key = seeded["tenants"]["bench_soak"][0]["api_key"]
        samples: list[tuple[float, dict[str, int]]] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append((time.monotonic(), stack.rss()))
                stop.wait(5 if quick else 15)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        webhook_spec = {
            "kind": "webhooks",
            "port": stack.web_port,
            "targets": targets_of(seeded, "bench_soak"),
            "rate": 30,
            "duration": duration,
            "prefix": "soak",
            "contacts": 300,
            "connections": 64,
        }
        api_spec = {
            "kind": "api",
            "port": stack.web_port,
            "api_key": key,
            "duration": duration,
            "concurrency": 2,
            "paths": [
                "list /api/v1/conversations/",
                "credits /api/v1/credits/",
                "contacts /api/v1/contacts/",
            ],
        }
        with ThreadPoolExecutor(2) as pool:
            webhooks = pool.submit(drive, stack, webhook_spec, "soak-webhooks")
            reads = pool.submit(drive, stack, api_spec, "soak-api")
            webhooks_out, reads_out = webhooks.result(), reads.result()
        time.sleep(2 if quick else 10)
        stop.set()
        sampler.join()
        accepted = len(webhooks_out.pop("accepted"))
        at_end = reply_counts(stack, "bench_soak")
        # The readers take no pause, so on two cores the answers may fall behind while they
        # read: what matters is that the backlog is answered, once, when the reads stop.
        drain_started = time.monotonic()
        wait_for(
            lambda: reply_counts(stack, "bench_soak")["replies_sent"] >= accepted,
            timeout=60 if quick else 300,
            interval=1,
        )
        drain_seconds = round(time.monotonic() - drain_started, 1)
        counts = reply_counts(stack, "bench_soak")
        # Flat: after a warm-up (the first fifth), each process's last sample is within 10 % of
        # its first; processes that came and went (none should) are left out.
        warm = samples[max(1, len(samples) // 5)][1]
        last = samples[-1][1]
        growth = {
            name: round((last[name] - warm[name]) / warm[name], 3) for name in warm if name in last
        }
        worst = max(growth.values()) if growth else None
        errors = (
            sum(v for k, v in webhooks_out["statuses"].items() if not k.startswith("2"))
            + sum(webhooks_out["errors"].values())
            + sum(v for k, v in reads_out["statuses"].items() if not k.startswith("2"))
        )
        answered_once = (
            counts["replies_sent"] == accepted
            and counts["replies_duplicated"] == 0
            and counts["debits_duplicated"] == 0
        )
        result.details.update(
            webhooks=webhooks_out,
            reads=reads_out,
            counts_at_end=at_end,
            counts=counts,
            rss_growth=growth,
            rss_samples=[(round(t - samples[0][0]), s) for t, s in samples],
        )
        result.figures = {
            "seconds": duration,
            "webhooks_accepted": accepted,
            "replies_sent_at_end": at_end["replies_sent"],
            "backlog_answered_in_s": drain_seconds,
            "replies_sent": counts["replies_sent"],
            "api_reads": reads_out["requests"],
            "error_responses": errors,
            "worst_rss_growth": worst,
            "load_avg": load_average(),
        }
        result.target("worst process RSS growth after warm-up", worst, 0.10)
        result.target("error responses", errors, 0)
        result.target(
            "replies sent / accepted, load's end + 10 s",
            round(at_end["replies_sent"] / max(1, accepted), 3),
            1.0,
            at_most=False,
            judged=False,
        )
        result.targets.append(
            {
                "name": "every accepted webhook answered once",
                "value": answered_once,
                "target": "true",
                "met": answered_once,
            }
        )
    return result


register("soak", soak)
