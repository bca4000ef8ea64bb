"""The inbound sweep queues again the events whose task was lost, and leaves those still waiting
in a backlog alone (docs/performance.md, change 20). Real Redis as the broker, no worker: what
is queued stays in the queue."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from channels_app.inbound import inbound_event_enqueue, inbound_event_process, inbound_events_sweep
from channels_app.models import ChannelKind, InboundEvent
from channels_app.selectors import inbound_events_stranded_exist
from hub import broker
from hub.celery import app
from hub.embedded import free_port
from tests.factories import ChannelFactory

WHATSAPP = {"phone_number_id": "1", "access_token": "t", "app_secret": "s", "verify_token": "v"}


def _purge() -> None:
    with app.pool.acquire(block=True) as connection:
        connection.default_channel.queue_purge(app.conf.task_default_queue)


@pytest.fixture
def empty_queue(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(broker, "BACKLOG_CHECK_SECONDS", 0.0)
    _purge()
    yield
    _purge()


def _event(*, received: timedelta, queued: timedelta | None, body: str = "{}") -> InboundEvent:
    channel = ChannelFactory.create(kind=ChannelKind.WHATSAPP, config=WHATSAPP)
    event = InboundEvent.objects.create(
        channel=channel, provider_event_id=str(uuid.uuid4()), body=body, content_type="json"
    )
    now = timezone.now()
    InboundEvent.objects.filter(pk=event.pk).update(
        received_at=now - received, queued_at=None if queued is None else now - queued
    )
    event.refresh_from_db()
    return event


def _requeued(event: InboundEvent) -> bool:
    """Whether the sweep handed it over (and noted when): its hand-over moved forward."""
    queued_at = InboundEvent.objects.get(pk=event.pk).queued_at
    return queued_at is not None and (event.queued_at is None or queued_at > event.queued_at)


def test_an_event_whose_task_was_lost_is_queued_again_a_minute_on(
    tenant_a, tenant_b, empty_queue
) -> None:
    with tenant_a.schema():
        lost = _event(received=timedelta(minutes=2), queued=timedelta(minutes=2))
        recent = _event(received=timedelta(seconds=20), queued=timedelta(seconds=20))
    with tenant_b.schema():
        # Another tenant's sweep neither sees nor queues it.
        assert inbound_events_sweep() == {"enqueued": 0}
    assert not broker.broker_backlogged()
    with tenant_a.schema():
        assert inbound_events_sweep() == {"enqueued": 1}
        assert _requeued(lost)
        assert not _requeued(recent)
        # Its new task now waits in the queue: the next sweep leaves it there.
        assert broker.broker_backlogged()
        assert inbound_events_sweep() == {"enqueued": 0}


def test_while_tasks_wait_only_events_handed_over_long_ago_or_never_are_queued(
    tenant_a, empty_queue
) -> None:
    assert inbound_event_enqueue(event_id=uuid.uuid4())
    assert broker.broker_backlogged()
    with tenant_a.schema():
        waiting = _event(received=timedelta(minutes=3), queued=timedelta(minutes=3))
        lost = _event(received=timedelta(minutes=11), queued=timedelta(minutes=11))
        never_queued = _event(received=timedelta(minutes=2), queued=None)
        just_in = _event(received=timedelta(seconds=10), queued=None)
        assert inbound_events_sweep() == {"enqueued": 2}
        assert _requeued(lost)
        assert _requeued(never_queued)
        assert not _requeued(waiting)
        assert InboundEvent.objects.get(pk=just_in.pk).queued_at is None


def test_a_failed_attempt_leaves_the_event_to_the_sweep(tenant_a, empty_queue) -> None:
    with tenant_a.schema():
        broken = _event(received=timedelta(minutes=2), queued=timedelta(seconds=5), body="{nope")
        inbound_event_process(event_id=broken.pk)
        broken.refresh_from_db()
        assert broken.status == InboundEvent.Status.RECEIVED
        assert broken.attempts == 1
        assert broken.error
        assert broken.queued_at is None
        # Queued again by the next sweep even though it was handed over seconds ago.
        assert inbound_events_sweep() == {"enqueued": 1}
        assert _requeued(broken)


def test_an_operator_retries_failed_events_from_the_admin(tenant_a, empty_queue, client) -> None:
    from django.contrib.auth import get_user_model

    with tenant_a.schema():
        failed = _event(received=timedelta(hours=2), queued=None)
        InboundEvent.objects.filter(pk=failed.pk).update(status="failed", attempts=10)
        failed.refresh_from_db()
        get_user_model().objects.create_superuser(username="ops", password="pw-ops-123456")
    client.post(
        f"/t/{tenant_a.slug}/admin/login/", {"username": "ops", "password": "pw-ops-123456"}
    )
    response = client.post(
        f"/t/{tenant_a.slug}/admin/channels_app/inboundevent/",
        {"action": "reprocess", "_selected_action": [failed.pk]},
    )
    assert response.status_code == 302
    with tenant_a.schema():
        retried = InboundEvent.objects.get(pk=failed.pk)
        assert (retried.status, retried.attempts) == ("received", 0)
        assert _requeued(failed)
        # Its task waits in the queue: the sweep leaves it there.
        assert inbound_events_sweep() == {"enqueued": 0}


def test_the_hand_over_is_noted_before_the_task_is_queued(
    tenant_a, empty_queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Noting it afterwards locked the event's row just as its task came for it; the task skips
    a locked event, which then waited for the next sweep (the Redis drill caught it)."""
    from channels_app import inbound

    with tenant_a.schema():
        lost = _event(received=timedelta(minutes=2), queued=timedelta(minutes=2))
        noted_first: list[bool] = []
        enqueue = inbound.inbound_event_enqueue

        def watched(*, event_id: uuid.UUID | str) -> bool:
            noted_first.append(_requeued(lost))
            return enqueue(event_id=event_id)

        monkeypatch.setattr(inbound, "inbound_event_enqueue", watched)
        assert inbound_events_sweep() == {"enqueued": 1}
    assert noted_first == [True]


def test_with_the_broker_down_the_queue_is_taken_for_empty(monkeypatch, caplog) -> None:
    monkeypatch.setattr(broker, "BACKLOG_CHECK_SECONDS", 0.0)
    # Nothing answers there (a pool of its own, dropped afterwards).
    monkeypatch.setitem(app.conf, "broker_url", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setattr(app, "_pool", None)
    with caplog.at_level(logging.WARNING, logger="hub.broker"):
        assert broker.broker_backlogged() is False
    assert [r.getMessage() for r in caplog.records] == ["broker queue not read"]


def test_the_sweeps_check_finds_what_the_sweep_would_queue(tenant_a, tenant_b, empty_queue) -> None:
    """The check every tenant gets every minute (jobs/registry.py), against the sweep's rules:
    handed over a minute ago is lost, unless tasks wait in the queue; then ten minutes."""
    with tenant_a.schema():
        assert not inbound_events_stranded_exist()
        _event(received=timedelta(minutes=3), queued=timedelta(minutes=3))
        _event(received=timedelta(seconds=20), queued=None)
        assert not broker.broker_backlogged()
        assert inbound_events_stranded_exist()
        assert inbound_event_enqueue(event_id=uuid.uuid4())
        assert broker.broker_backlogged()
        # Its task may be one of those waiting.
        assert not inbound_events_stranded_exist()
        _event(received=timedelta(minutes=11), queued=timedelta(minutes=11))
        assert inbound_events_stranded_exist()
    with tenant_b.schema():
        assert not inbound_events_stranded_exist()
