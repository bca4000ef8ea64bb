"""Timestamps read from PostgreSQL: psycopg's C loader behind Django's interface (hub/db.py)."""

from __future__ import annotations

import datetime

import psycopg
import pytest
from django.db import DataError, connection
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg.pq import Format

from channels_app.models import InboundEvent
from conversations.models import Conversation
from hub.db import TimestamptzLoader, insert_unless_conflict
from tests.factories import ChannelFactory, ConversationFactory

pytestmark = pytest.mark.django_db

TIMESTAMPTZ = psycopg.adapters.types["timestamptz"].oid


def _read(sql: str) -> datetime.datetime:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        (value,) = cursor.fetchone()
    return value


def test_every_cursor_reads_timestamps_with_the_hubs_loader() -> None:
    connection.ensure_connection()
    with connection.cursor() as cursor:
        loader = cursor.cursor.adapters.get_loader(TIMESTAMPTZ, Format.TEXT)
    assert issubclass(loader, TimestamptzLoader)
    # Django compares it on every cursor; a mismatch would register its own loader again.
    assert loader.timezone == connection.timezone


def test_a_timestamp_reads_as_django_gives_it_aware_in_utc() -> None:
    value = _read("SELECT '2026-03-01 12:34:56.789012+05:30'::timestamptz")
    assert value == datetime.datetime(2026, 3, 1, 7, 4, 56, 789012, tzinfo=datetime.UTC)
    assert value.tzinfo is datetime.UTC


@pytest.mark.parametrize(
    "literal",
    [
        "NULL",
        "'2026-03-01 12:34:56.789012+05:30'",
        "'2026-10-25 01:30:00-03:00'",
        "'0001-01-01 00:00:00+00'",
        "'9999-12-31 23:59:59.999999+00'",
        "'1969-07-20 20:17:40.5+14'",
    ],
)
def test_a_timestamp_reads_as_djangos_own_loader_reads_it(literal: str) -> None:
    sql = f"SELECT {literal}::timestamptz"
    ours = _read(sql)
    with connection.cursor() as cursor:
        register_tzloader(connection.timezone, cursor.cursor)
        cursor.execute(sql)
        (djangos,) = cursor.fetchone()
    assert ours == djangos
    assert getattr(ours, "tzinfo", None) is getattr(djangos, "tzinfo", None)


def test_a_timestamp_python_cannot_hold_is_refused_as_by_django() -> None:
    with pytest.raises(DataError):
        _read("SELECT 'infinity'::timestamptz")
    with connection.cursor() as cursor:
        register_tzloader(connection.timezone, cursor.cursor)
        cursor.execute("SELECT 'infinity'::timestamptz")
        with pytest.raises(DataError):
            cursor.fetchone()


def test_a_stored_time_reads_back_to_the_microsecond(tenant_a) -> None:
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC)
    with tenant_a.schema():
        conversation = ConversationFactory(snoozed_until=when)
        read = Conversation.objects.get(pk=conversation.pk)  # type: ignore[attr-defined]
    assert read.snoozed_until == when
    assert read.snoozed_until.tzinfo is datetime.UTC
    assert read.created_at.tzinfo is datetime.UTC


def test_an_insert_a_unique_constraint_turns_down_writes_nothing_and_says_so(tenant_a) -> None:
    with tenant_a.schema():
        channel = ChannelFactory.create()
        first = InboundEvent(channel=channel, provider_event_id="evt-1", body="{}", content_type="")
        assert insert_unless_conflict(first)
        assert not first._state.adding
        stored = InboundEvent.objects.get(pk=first.pk)
        # Prepared as save() prepares it: auto_now_add and the defaults filled in.
        assert stored.received_at is not None
        assert stored.status == InboundEvent.Status.RECEIVED
        again = InboundEvent(channel=channel, provider_event_id="evt-1", body="{}", content_type="")
        assert not insert_unless_conflict(again)
        assert again._state.adding
        assert InboundEvent.objects.filter(provider_event_id="evt-1").count() == 1
        # The connection is still usable in the test's transaction: no error was raised.
        assert InboundEvent.objects.count() == 1
