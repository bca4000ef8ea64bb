"""`presence.sweep`: what a socket that died with its process leaves behind is put right (an
operator still stored online, a visitor the team was never told went offline), on real Redis
and the real channel layer, in one tenant at a time."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from asgiref.sync import async_to_sync

from conversations.live import conversation_group
from conversations.models import Conversation, Operator
from hub.redis import get_redis
from inbox import presence
from jobs.registry import JOBS
from jobs.schedules import DEFAULT_SCHEDULES
from jobs.services import job_run
from tests.factories import ConversationFactory, OperatorFactory
from tests.support import GroupListener, free_port
from webchat import presence as webchat_presence


@pytest.fixture
def watched() -> Iterator[None]:
    """Redis has kept presence for longer than an operator may stay unseen."""
    redis = get_redis()
    redis.set(presence.WATCHING_SINCE_KEY, time.time() - presence.GONE_AFTER_SECONDS - 1)
    yield
    redis.delete(presence.WATCHING_SINCE_KEY)


@pytest.fixture(autouse=True)
def _nobody_announced(tenant_a, tenant_b) -> Iterator[None]:
    """Each test starts, and leaves Redis, with no visitor announced online."""
    keys = [webchat_presence.announced_visitors_key(t.slug) for t in (tenant_a, tenant_b)]
    get_redis().delete(*keys)
    yield
    get_redis().delete(*keys)


def _availability(operator: Operator) -> str:
    return Operator.objects.get(pk=operator.pk).availability


def test_operators_gone_are_stored_offline_and_their_visitors_hear_it(
    tenant_a, tenant_b, watched
) -> None:
    with tenant_b.schema():
        # Another tenant's stale operator is that tenant's sweep's business.
        elsewhere = OperatorFactory.create(availability=Operator.Availability.ONLINE)
    with tenant_a.schema():
        gone = OperatorFactory.create(availability=Operator.Availability.ONLINE)
        here = OperatorFactory.create(availability=Operator.Availability.ONLINE)
        away = OperatorFactory.create(availability=Operator.Availability.AWAY)
        presence.operator_presence_touch(
            schema=tenant_a.slug, operator_id=str(here.pk), availability="online"
        )
        conversation = ConversationFactory.create(assignee=gone)
        ConversationFactory.create(assignee=gone, status=Conversation.Status.RESOLVED)
        listener = GroupListener(conversation_group(tenant_a.slug, str(conversation.pk)))

        assert presence.presence_sweep() == {"operators_offline": 1, "visitors_offline": 0}
        assert _availability(gone) == Operator.Availability.OFFLINE
        assert _availability(here) == Operator.Availability.ONLINE
        assert _availability(away) == Operator.Availability.AWAY
        [heard] = listener.take()
        listener.close()
        assert (heard["type"], heard["who"], heard["status"], heard["name"]) == (
            "hub.presence",
            "operator",
            "offline",
            gone.display_name,
        )
        # Done once: the next sweep finds nobody.
        assert presence.presence_sweep() == {"operators_offline": 0, "visitors_offline": 0}
    with tenant_b.schema():
        assert _availability(elsewhere) == Operator.Availability.ONLINE


def test_nobody_is_called_gone_before_redis_was_watched_long_enough(tenant_a) -> None:
    redis = get_redis()
    redis.delete(presence.WATCHING_SINCE_KEY)
    try:
        with tenant_a.schema():
            operator = OperatorFactory.create(availability=Operator.Availability.ONLINE)
            # A fresh (or restarted) Redis: the keys of live sockets come back with their pings.
            assert presence.presence_sweep()["operators_offline"] == 0
            assert _availability(operator) == Operator.Availability.ONLINE
    finally:
        redis.delete(presence.WATCHING_SINCE_KEY)


def test_visitors_whose_socket_died_are_announced_offline(tenant_a, tenant_b) -> None:
    with tenant_a.schema():
        dead = ConversationFactory.create()
        alive = ConversationFactory.create()
    with tenant_b.schema():
        other = ConversationFactory.create()
    for schema, conversation in (
        (tenant_a.slug, dead),
        (tenant_a.slug, alive),
        (tenant_b.slug, other),
    ):
        assert async_to_sync(webchat_presence.visitor_seen)(
            schema=schema, conversation_id=str(conversation.pk), socket="socket-1"
        )
    redis = get_redis()
    # The process holding the socket died: its key expires, and nobody says "offline".
    for schema, conversation in ((tenant_a.slug, dead), (tenant_b.slug, other)):
        redis.delete(webchat_presence.visitor_key(schema, str(conversation.pk)))
    listener = GroupListener(conversation_group(tenant_a.slug, str(dead.pk)))
    with tenant_a.schema():
        assert presence.presence_sweep() == {"operators_offline": 0, "visitors_offline": 1}
        [heard] = listener.take()
        listener.close()
        assert (heard["who"], heard["status"], heard["conversation"]) == (
            "visitor",
            "offline",
            str(dead.pk),
        )
        assert presence.presence_sweep()["visitors_offline"] == 0
    announced = webchat_presence.announced_visitors_key
    assert redis.smembers(announced(tenant_a.slug)) == {str(alive.pk).encode()}
    # Tenant B's dead visitor waits for tenant B's sweep.
    assert redis.smembers(announced(tenant_b.slug)) == {str(other.pk).encode()}


def test_a_visitor_leaving_normally_is_not_announced_twice(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        args = {"schema": tenant_a.slug, "conversation_id": str(conversation.pk), "socket": "s"}
        async_to_sync(webchat_presence.visitor_seen)(**args)
        assert async_to_sync(webchat_presence.visitor_left)(**args)
        assert presence.presence_sweep()["visitors_offline"] == 0


def test_the_sweep_is_a_scheduled_tenant_job(tenant_a, watched) -> None:
    assert ("presence.sweep", "*", "*") in DEFAULT_SCHEDULES.values()
    assert JOBS["presence.sweep"].__module__ == "inbox.jobs"
    with tenant_a.schema():
        operator = OperatorFactory.create(availability=Operator.Availability.ONLINE)
        run = job_run(job="presence.sweep")
        assert run is not None
        assert run.result == {"operators_offline": 1, "visitors_offline": 0}
        assert _availability(operator) == Operator.Availability.OFFLINE


def test_with_redis_down_the_sweep_changes_nobody(tenant_a, settings) -> None:
    with tenant_a.schema():
        operator = OperatorFactory.create(availability=Operator.Availability.ONLINE)
        # Nothing answers there: presence cannot tell who is gone, so nobody is.
        settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
        assert presence.presence_sweep() == {"operators_offline": 0, "visitors_offline": 0}
        assert _availability(operator) == Operator.Availability.ONLINE
