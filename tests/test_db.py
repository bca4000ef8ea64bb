"""PostgreSQL as the hot paths use it (hub/db.py): timestamps read by psycopg's C loader behind
Django's interface, inserts a unique constraint may turn down, queries compiled once."""

from __future__ import annotations

import datetime
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from django.db import DatabaseError, DataError, IntegrityError, connection, transaction
from django.db.backends.postgresql.psycopg_any import register_tzloader
from django.db.models import F, Model
from django.db.models.signals import post_init
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from psycopg.pq import Format

from agents.models import LlmCall
from billing.models import CreditBalance, CreditLedgerEntry
from channels_app.models import Channel, InboundEvent
from conversations.models import Contact, ContactIdentity, Conversation, Message
from conversations.services.messages import message_receive
from hub.db import (
    KeptPlanQuery,
    PreparedQuery,
    TimestamptzLoader,
    insert,
    insert_unless_conflict,
    prepared_exists,
    save_fields,
    upsert,
)
from tests import support
from tests.factories import ChannelFactory, ContactIdentityFactory, ConversationFactory

HOUR = datetime.timedelta(hours=1)

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


# What the hot paths ask, through PreparedQuery and through the ORM alike.
IDENTITY_WITH_CONTACT = PreparedQuery(
    lambda kind, external_id: ContactIdentity.objects.select_related("contact").filter(
        channel_kind=kind, external_id=external_id
    ),
    kind=str,
    external_id=str,
)
MESSAGES_AFTER = PreparedQuery(
    lambda conversation_id, seq: (
        Message.objects.select_related("conversation")
        .filter(conversation_id=conversation_id, seq__gt=seq)
        .order_by("seq")
    ),
    conversation_id=uuid.UUID,
    seq=int,
)


def test_a_prepared_query_gives_what_the_orm_gives_related_rows_and_decrypted_fields(
    tenant_a,
) -> None:
    with tenant_a.schema():
        identity = ContactIdentityFactory.create(channel_kind="whatsapp", external_id="+4912")
        conversation = ConversationFactory.create(contact=identity.contact)
        for text in ("first", "second", "third"):
            message_receive(
                conversation=conversation,
                contact=identity.contact,
                content={"type": "text", "text": text},
            )
        found = IDENTITY_WITH_CONTACT.first(kind="whatsapp", external_id="+4912")
        assert found == identity
        stored_name = Contact.objects.get(pk=identity.contact_id).name
        with CaptureQueriesContext(connection) as queries:
            assert found.contact == identity.contact
            assert found.contact.name == stored_name
        assert not queries.captured_queries  # the contact came with the identity
        assert IDENTITY_WITH_CONTACT.first(kind="telegram", external_id="+4912") is None

        prepared = MESSAGES_AFTER.all(conversation_id=conversation.pk, seq=1)
        orm = list(
            Message.objects.select_related("conversation")
            .filter(conversation=conversation, seq__gt=1)
            .order_by("seq")
        )
        assert [m.pk for m in prepared] == [m.pk for m in orm]
        # The encrypted content decrypted as the ORM decrypts it; instances as from the ORM.
        assert [m.content for m in prepared] == [
            {"type": "text", "text": "second"},
            {"type": "text", "text": "third"},
        ]
        assert [m.created_at for m in prepared] == [m.created_at for m in orm]
        assert all(not m._state.adding and m._state.db == "default" for m in prepared)
        assert prepared[0].conversation.contact_id == identity.contact_id
        # A value given as text where the query takes a UUID is converted.
        again = MESSAGES_AFTER.all(conversation_id=str(conversation.pk), seq=2)
        assert [m.pk for m in again] == [orm[1].pk]


def test_a_prepared_query_reads_the_current_tenants_rows_only(tenant_a, tenant_b) -> None:
    query = PreparedQuery(
        lambda external_id: ContactIdentity.objects.filter(external_id=external_id),
        external_id=str,
    )
    with tenant_a.schema():
        in_a = ContactIdentityFactory.create(channel_kind="telegram", external_id="42")
        assert query.all(external_id="42") == [in_a]  # compiled here, in tenant a's schema
    with tenant_b.schema():
        assert query.all(external_id="42") == []
        in_b = ContactIdentityFactory.create(channel_kind="telegram", external_id="42")
        assert query.all(external_id="42") == [in_b]
    with tenant_a.schema():
        assert query.all(external_id="42") == [in_a]


def test_a_prepared_values_list_gives_tuples_or_values(tenant_a) -> None:
    flat = PreparedQuery(
        lambda contact_id: (
            ContactIdentity.objects.filter(contact_id=contact_id)
            .order_by("external_id")
            .values_list("external_id", flat=True)
        ),
        contact_id=uuid.UUID,
    )
    pairs = PreparedQuery(
        lambda contact_id: (
            ContactIdentity.objects.filter(contact_id=contact_id)
            .order_by("external_id")
            .values_list("channel_kind", "external_id")
        ),
        contact_id=uuid.UUID,
    )
    with tenant_a.schema():
        first = ContactIdentityFactory.create(channel_kind="sms", external_id="+1")
        ContactIdentityFactory.create(
            contact=first.contact, channel_kind="email", external_id="a@x"
        )
        assert flat.all(contact_id=first.contact_id) == ["+1", "a@x"]
        assert pairs.all(contact_id=first.contact_id) == [("sms", "+1"), ("email", "a@x")]
        assert pairs.first(contact_id=uuid.uuid4()) is None


def test_a_prepared_exists_says_what_exists_says_at_its_values_edges(tenant_a, tenant_b) -> None:
    snoozed_due = prepared_exists(
        lambda now: (
            Conversation.objects.filter(status="snoozed", snoozed_until__lte=now)
            # Ordered and annotated, as the jobs' checks are: neither changes the answer.
            .annotate(contact_name=F("contact__name"))
            .order_by("-snoozed_until")
        ),
        now=datetime.datetime,
    )
    until = timezone.now().replace(microsecond=0)
    with tenant_a.schema():
        assert not snoozed_due(now=until)
        ConversationFactory.create(status="snoozed", snoozed_until=until)
        ConversationFactory.create(status="open", snoozed_until=until - HOUR)
        for now in (until - HOUR, until - datetime.timedelta(microseconds=1), until, until + HOUR):
            expected = Conversation.objects.filter(
                status="snoozed", snoozed_until__lte=now
            ).exists()
            assert snoozed_due(now=now) is expected
        assert snoozed_due(now=until)
        assert not snoozed_due(now=until - datetime.timedelta(microseconds=1))
    with tenant_b.schema():
        assert not snoozed_due(now=until + HOUR)


def test_a_prepared_query_whose_lookup_rewrites_its_value_is_refused(tenant_a) -> None:
    query = PreparedQuery(
        lambda text: ContactIdentity.objects.filter(external_id__icontains=text), text=str
    )
    with tenant_a.schema(), pytest.raises(TypeError, match="do not reach the SQL"):
        query.all(text="4")
    with pytest.raises(TypeError, match="no stand-in"):
        PreparedQuery(lambda flag: ContactIdentity.objects.filter(pk=flag), flag=bool)


def test_a_prepared_query_takes_exactly_its_values_and_none_of_them_none(tenant_a) -> None:
    with tenant_a.schema(), pytest.raises(TypeError, match="expected the values"):
        IDENTITY_WITH_CONTACT.all(kind="sms")
    with tenant_a.schema(), pytest.raises(TypeError, match="cannot be None"):
        IDENTITY_WITH_CONTACT.all(kind="sms", external_id=None)


def test_a_prepared_locking_query_locks_and_is_refused_outside_a_transaction(tenant_a) -> None:
    locked = PreparedQuery(
        lambda external_id: ContactIdentity.objects.select_for_update().filter(
            external_id=external_id
        ),
        external_id=str,
    )
    with tenant_a.schema(), CaptureQueriesContext(connection) as queries:
        assert locked.all(external_id="nobody") == []  # the test's transaction
    assert queries.captured_queries[-1]["sql"].endswith("FOR UPDATE")

    def outside() -> None:
        # A thread of its own has a connection of its own, in autocommit as a request's is.
        try:
            with tenant_a.schema(), pytest.raises(TransactionManagementError):
                locked.all(external_id="nobody")
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(outside).result()


def test_an_insert_reads_back_the_key_the_database_made_and_raises_on_a_conflict(
    tenant_a,
) -> None:
    with tenant_a.schema():
        call = LlmCall(purpose=LlmCall.Purpose.REPLY, api_mode="responses", outcome="ok")
        insert(call)
        assert isinstance(call.pk, int)
        assert not call._state.adding
        stored = LlmCall.objects.get(pk=call.pk)
        assert stored.created_at == call.created_at  # auto_now_add filled as save() fills it
        first = CreditLedgerEntry(amount=5, balance_after=5, reason="x", idempotency_key="k")
        insert(first)
        assert CreditLedgerEntry.objects.get(idempotency_key="k").pk == first.pk
        with pytest.raises(IntegrityError), transaction.atomic():
            insert(CreditLedgerEntry(amount=5, balance_after=10, reason="x", idempotency_key="k"))
        assert CreditLedgerEntry.objects.filter(idempotency_key="k").count() == 1


def test_save_fields_writes_the_named_fields_only_as_save_would(tenant_a) -> None:
    with tenant_a.schema():
        balance, _ = CreditBalance.objects.update_or_create(pk=1, defaults={"balance": 10})
        before = balance.updated_at
        balance.balance = 7
        balance.low_alerted_at = timezone.now()  # changed in memory, not named
        save_fields(balance, ["balance", "updated_at"])
        stored = CreditBalance.objects.get(pk=1)
        assert stored.balance == 7
        assert stored.low_alerted_at is None
        assert stored.updated_at > before  # auto_now, as save(update_fields=...) sets it
        assert stored.updated_at == balance.updated_at
        CreditBalance.objects.filter(pk=1).delete()
        with pytest.raises(DatabaseError, match="did not affect"), transaction.atomic():
            save_fields(balance, ["balance"])


def test_writes_without_signals_are_refused_for_models_with_save_receivers(tenant_a) -> None:
    with tenant_a.schema():
        channel = ChannelFactory.create()
        with pytest.raises(TypeError, match="save receivers"):
            save_fields(channel, ["name"])
        with pytest.raises(TypeError, match="save receivers"):
            insert(Channel(kind="api", name="x"))


def test_an_upsert_inserts_then_overwrites_the_named_fields_of_the_row_it_meets(tenant_a) -> None:
    with tenant_a.schema():
        first = CreditLedgerEntry(amount=5, balance_after=5, reason="first", idempotency_key="u")
        upsert(first, unique_fields=["idempotency_key"], update_fields=["reason"])
        again = CreditLedgerEntry(amount=9, balance_after=9, reason="again", idempotency_key="u")
        upsert(again, unique_fields=["idempotency_key"], update_fields=["reason"])
        (stored,) = CreditLedgerEntry.objects.filter(idempotency_key="u")
        assert (stored.pk, stored.reason, stored.amount) == (first.pk, "again", 5)


def _fields(instance: Any) -> dict[str, Any]:
    return {name: value for name, value in vars(instance).items() if name != "_state"}


def test_a_fast_loading_model_reads_what_init_would_have_made(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create(labels=["vip"])
        message, _ = message_receive(
            conversation=conversation,
            contact=conversation.contact,
            content={"type": "text", "text": "hello"},
        )
        for read in (
            lambda: Message.objects.select_related("conversation__contact").get(pk=message.pk),
            lambda: Message.objects.only("id", "seq", "conversation_id").get(pk=message.pk),
        ):
            loaded = read()
            # The same row made the long way: Django's own from_db, through __init__.
            field_names = [name for name in _fields(loaded) if not name.startswith("_")]
            made = Model.from_db.__func__(  # type: ignore[attr-defined]
                Message, "default", field_names, [getattr(loaded, n) for n in field_names]
            )
            assert _fields(made) == {k: v for k, v in _fields(loaded).items() if k[0] != "_"}
            assert loaded.get_deferred_fields() == made.get_deferred_fields()
            assert (loaded._state.adding, loaded._state.db) == (False, "default")
        full = Message.objects.select_related("conversation__contact").get(pk=message.pk)
        with CaptureQueriesContext(connection) as queries:
            assert full.conversation.contact.name == conversation.contact.name
        assert not queries.captured_queries
        partial = Message.objects.only("id", "seq").get(pk=message.pk)
        assert partial.content == {"type": "text", "text": "hello"}  # deferred: read on use
        partial.is_private = True
        partial.save(update_fields=["is_private"])  # an update, not an insert
        assert Message.objects.get(pk=message.pk).is_private is True
        assert Message.objects.count() == 1


def test_a_fast_loading_model_with_an_init_receiver_is_made_through_init(tenant_a) -> None:
    seen: list[Any] = []

    def receiver(sender: Any, instance: Any, **kwargs: Any) -> None:
        seen.append(instance)

    with tenant_a.schema():
        contact = ConversationFactory.create().contact
        post_init.connect(receiver, sender=Contact)
        try:
            loaded = Contact.objects.get(pk=contact.pk)
        finally:
            post_init.disconnect(receiver, sender=Contact)
        assert seen == [loaded]
        assert seen[0] is loaded
        Contact.objects.get(pk=contact.pk)
    assert len(seen) == 1


def _prepared(*fragments: str) -> list[tuple[int, int]]:
    """(generic plans, custom plans) of this connection's prepared statements holding texts."""
    where = " AND ".join("statement LIKE %s" for _ in fragments)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE {where}",  # noqa: S608
            [f"%{fragment}%" for fragment in fragments],
        )
        return cursor.fetchall()


def test_a_kept_plan_query_is_planned_once_and_reads_each_tenants_rows(tenant_a, tenant_b) -> None:
    kept = KeptPlanQuery(
        lambda external_id: (
            ContactIdentity.objects.select_related("contact")
            .filter(external_id=external_id, channel_kind="kept-plan")
            .order_by("-external_id", "pk")
        ),
        external_id=str,
    )
    shape = ("conversations_contactidentity", "conversations_contact", 'external_id" DESC')
    with tenant_a.schema():
        in_a = ContactIdentityFactory.create(channel_kind="kept-plan", external_id="42")
    with tenant_b.schema():
        in_b = ContactIdentityFactory.create(channel_kind="kept-plan", external_id="42")
    with tenant_a.schema():
        for _ in range(7):
            assert kept.all(external_id="42") == [in_a]
    [(generic, _custom)] = _prepared(*shape)
    assert generic >= 1  # PostgreSQL stopped planning it
    # The same statement, its plan kept, in another tenant's schema: that tenant's rows.
    with tenant_b.schema():
        assert kept.all(external_id="42") == [in_b]
        assert kept.all(external_id="7") == []
    with tenant_a.schema():
        assert kept.all(external_id="42") == [in_a]
    assert len(_prepared(*shape)) == 1


def test_statements_prepared_in_one_tenants_schema_read_the_next_tenants_rows(
    tenant_a, tenant_b
) -> None:
    with tenant_a.schema():
        in_a = ContactIdentityFactory.create(channel_kind="prepared", external_id="42")
    with tenant_b.schema():
        in_b = ContactIdentityFactory.create(channel_kind="prepared", external_id="42")

    def read() -> list[ContactIdentity]:
        return list(ContactIdentity.objects.filter(channel_kind="prepared", external_id="42"))

    with tenant_a.schema():
        for _ in range(7):
            assert read() == [in_a]
    [(generic, custom)] = _prepared("conversations_contactidentity", "channel_kind")
    assert generic + custom >= 2  # prepared after five runs, run from the prepared statement
    with tenant_b.schema():
        assert read() == [in_b]
    with tenant_a.schema():
        assert read() == [in_a]


_COUNT_PREPARED = """
import django
django.setup()
from django.db import connection
with connection.cursor() as cursor:
    for _ in range(7):
        cursor.execute("SELECT count(*) FROM pg_class WHERE relpages > %s", [1])
    cursor.execute("SELECT count(*) FROM pg_prepared_statements")
    print(cursor.fetchone()[0])
"""


@pytest.mark.parametrize(("setting", "prepared"), [("1", True), ("0", False)], ids=["on", "off"])
def test_statements_are_prepared_unless_turned_off(setting: str, prepared: bool) -> None:
    """`HUB_DB_PREPARED_STATEMENTS=0`, for a transaction-pooling PgBouncer older than 1.21:
    nothing is prepared on the server."""
    count = int(support.python_output(_COUNT_PREPARED, HUB_DB_PREPARED_STATEMENTS=setting))
    assert (count > 0) is prepared
