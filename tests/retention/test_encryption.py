"""Message bodies encrypted at rest for a tenant that asks: ciphertext in the database (the
messages and every row that copies them: raw inbound bodies, outgoing webhook payloads,
extracted leads, notifications), plaintext on every path that reads through the ORM (API,
admin, processing), search off, the daily job bringing stored rows in line when the setting
changes, and key rotation re-encrypting them all."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from automation.models import AssessmentFlow, AssessmentRun, Reminder, Task
from channels_app.inbound import inbound_event_process
from channels_app.models import Channel, ChannelKind, InboundEvent
from conversations.models import Message
from conversations.services.messages import message_receive
from extraction.models import Extraction
from inbox.models import Notification
from inbox.selectors import notification_list
from inbox.services import notification_create
from processing.models import RoutingDecision
from retention.encryption import TOKEN
from retention.services import encryption_align, retention_apply
from tests.channels.helpers import fixture
from tests.factories import ConversationFactory, OperatorFactory, UserFactory
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_event_dispatch, webhook_subscription_create

SECRET = "my card number is 4111 1111 1111 1111"


def _set_tenant(info, **fields) -> None:
    tenant = info.tenant
    for key, value in fields.items():
        setattr(tenant, key, value)
    tenant.save()


def _raw(message_id) -> tuple[dict, str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT content::text, text, search_vector::text FROM conversations_message "
            "WHERE id = %s",
            [message_id],
        )
        content, text, vector = cursor.fetchone()
    return json.loads(content), text, vector


def _receive(conversation, text: str = SECRET) -> Message:
    message, _ = message_receive(
        conversation=conversation,
        contact=conversation.contact,
        content={"type": "text", "text": text},
    )
    return message


def test_an_encrypting_tenant_stores_ciphertext_and_reads_plaintext(tenant_a, tenant_b) -> None:
    _set_tenant(tenant_a, message_encryption=True)
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        message = _receive(conversation)
        content, text, vector = _raw(message.pk)
        assert set(content) == {"$enc"}
        assert TOKEN.match(text)
        assert "4111" not in json.dumps(content) + text + vector
        stored = Message.objects.get(pk=message.pk)
        assert stored.content == {"type": "text", "text": SECRET}
        assert stored.text == SECRET
        assert Message.objects.filter(pk=message.pk).values_list("content", flat=True)[0] == {
            "type": "text",
            "text": SECRET,
        }
    with tenant_b.schema():
        # The other tenant did not ask: plaintext, searchable.
        plain = _receive(ConversationFactory.create())
        assert _raw(plain.pk)[1] == SECRET
    api = tenant_a.client().get(f"/api/v1/conversations/{conversation.pk}/messages/")
    assert api.json()["results"][0]["content"] == {"type": "text", "text": SECRET}
    listed = tenant_a.client().get("/api/v1/conversations/").json()["results"]
    assert listed[0]["last_message"]["content"]["text"] == SECRET


def test_search_finds_nothing_in_encrypted_messages(tenant_a) -> None:
    with tenant_a.schema():
        plain = ConversationFactory.create()
        _receive(plain, "invoice for the blue kayak")
    _set_tenant(tenant_a, message_encryption=True)
    with tenant_a.schema():
        encrypted = ConversationFactory.create()
        _receive(encrypted, "invoice for the red kayak")
    found = tenant_a.client().get("/api/v1/conversations/", {"q": "kayak"}).json()["results"]
    assert [item["id"] for item in found] == [str(plain.pk)]


def test_the_admin_shows_plaintext(tenant_a, client) -> None:
    _set_tenant(tenant_a, message_encryption=True)
    with tenant_a.schema():
        message = _receive(ConversationFactory.create())
        client.force_login(UserFactory.create(username="root", is_superuser=True))
    base = f"/t/{tenant_a.slug}/admin/conversations/message/"
    for url in (base, f"{base}{message.pk}/change/"):
        page = client.get(url)
        assert page.status_code == 200
        assert "4111 1111" in page.content.decode()


def test_the_daily_alignment_encrypts_and_decrypts_stored_rows(tenant_a, settings) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        before = _receive(conversation, "written before the switch")
    _set_tenant(tenant_a, message_encryption=True)
    with tenant_a.schema():
        assert encryption_align()["messages_encrypted"] == 1
        assert set(_raw(before.pk)[0]) == {"$enc"}
        assert encryption_align()["messages_encrypted"] == 0
        # A rotated key: the old one still decrypts.
        settings.HUB_FIELD_KEYS = [Fernet.generate_key().decode(), *settings.HUB_FIELD_KEYS]
        assert Message.objects.get(pk=before.pk).text == "written before the switch"
    _set_tenant(tenant_a, message_encryption=False)
    with tenant_a.schema():
        assert encryption_align()["messages_decrypted"] == 1
        content, text, vector = _raw(before.pk)
        assert content == {"type": "text", "text": "written before the switch"}
        assert text == "written before the switch"
        assert "switch" in vector


LOOKALIKE = "gAAAAA" + "A" * 80


def test_a_customer_text_that_looks_like_a_token_stays_text(tenant_a) -> None:
    with tenant_a.schema():
        message = _receive(ConversationFactory.create(), LOOKALIKE)
        assert Message.objects.get(pk=message.pk).text == LOOKALIKE


# --- The rows that copy message bodies ---------------------------------------------------------

TG_SECRET = "tg-secret_token-123"


def _column(table: str, column: str, pk) -> str:
    """A column as PostgreSQL stores it, read with a raw cursor (no field decrypts it)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column}::text FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def _is_envelope(raw: str) -> bool:
    stored = json.loads(raw)
    return (
        isinstance(stored, dict) and set(stored) == {"$enc"} and bool(TOKEN.match(stored["$enc"]))
    )


def _telegram(info) -> Channel:
    with info.schema():
        return Channel.objects.create(
            kind=ChannelKind.TELEGRAM,
            name="Bot",
            config={"bot_token": "123:ABC", "secret_token": TG_SECRET},
        )


def _post_update(client, info, channel: Channel, text: str) -> None:
    update = fixture("telegram_text")
    update["message"]["text"] = text
    response = client.post(
        f"/webhooks/{info.slug}/telegram/{channel.channel_token}/",
        json.dumps(update).encode(),
        content_type="application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=TG_SECRET,
    )
    assert response.status_code == 200


def test_the_inbound_path_stores_the_raw_body_encrypted_and_processes_it(
    client, tenant_a, tenant_b
) -> None:
    _set_tenant(tenant_a, message_encryption=True)
    channels = {info.slug: _telegram(info) for info in (tenant_a, tenant_b)}
    for info in (tenant_a, tenant_b):
        _post_update(client, info, channels[info.slug], SECRET)
    with tenant_a.schema():
        event = InboundEvent.objects.get()
        raw = _column("channels_app_inboundevent", "body", event.pk)
        assert TOKEN.match(raw)
        assert "4111" not in raw
        # Deduplication still reads the provider's id, which stays plain.
        assert event.provider_event_id == "update:10000"
        assert json.loads(event.body)["message"]["text"] == SECRET
        inbound_event_process(event_id=event.pk)
        assert InboundEvent.objects.get().status == InboundEvent.Status.PROCESSED
        message = Message.objects.get()
        assert message.content == {"type": "text", "text": SECRET}
        assert "4111" not in _column("conversations_message", "content", message.pk)
    with tenant_b.schema():
        # The other tenant did not ask: its raw body is stored as received.
        event = InboundEvent.objects.get()
        assert (
            json.loads(_column("channels_app_inboundevent", "body", event.pk))["message"]["text"]
            == SECRET
        )


def test_notifications_quoting_a_customer_are_encrypted(tenant_a, tenant_b) -> None:
    _set_tenant(tenant_a, message_encryption=True)
    with tenant_a.schema():
        operator = OperatorFactory.create()
        notification = notification_create(kind="task", title=f"New task: {SECRET}", body=SECRET)
        for column in ("title", "body"):
            raw = _column("inbox_notification", column, notification.pk)
            assert TOKEN.match(raw)
            assert "4111" not in raw
        [listed] = notification_list(operator=operator)
        assert (listed.title, listed.body) == (f"New task: {SECRET}", SECRET)
    with tenant_b.schema():
        plain = notification_create(kind="task", title="New task", body=SECRET)
        assert _column("inbox_notification", "body", plain.pk) == SECRET


def _one_of_each(info) -> dict[str, Any]:
    """A message, a raw inbound body, an outgoing delivery, a lead and a notification, all
    holding SECRET, in `info`'s schema."""
    conversation = ConversationFactory.create()
    message = _receive(conversation)
    event = InboundEvent.objects.create(
        channel=conversation.channel,
        provider_event_id=f"evt-{conversation.pk}",
        body=json.dumps({"text": SECRET}),
        content_type="application/json",
    )
    webhook_subscription_create(
        url="http://127.0.0.1:9/hook", events=["lead.extracted"], secret="whsec_" + "x" * 24
    )
    [delivery] = webhook_event_dispatch(event="lead.extracted", payload={"text": SECRET})
    extraction = Extraction.objects.create(
        conversation=conversation,
        contact=conversation.contact,
        version=1,
        data={"notes": SECRET},
        dropped=[{"field": "phone", "value": SECRET, "reason": "not a phone"}],
        changes={"added": {"notes": SECRET}},
        source="rules",
        trigger="idle",
        through_seq=1,
    )
    notification = notification_create(kind="task", title=SECRET, body=SECRET)
    task = Task.objects.create(title=SECRET, description=SECRET, conversation=conversation)
    reminder = Reminder.objects.create(
        conversation=conversation, text=SECRET, due_at=timezone.now() + timedelta(days=1)
    )
    flow = AssessmentFlow.objects.create(
        key=f"k{conversation.pk.hex[:8]}", name="Intake", definition={}
    )
    run = AssessmentRun.objects.create(
        flow=flow, definition={}, conversation=conversation, answers={"card": {"value": SECRET}}
    )
    decision = RoutingDecision.objects.create(
        message=message,
        conversation=conversation,
        entities=[{"type": "card", "value": SECRET}],
        handler="answer",
        reason=RoutingDecision.Reason.DEFAULT,
    )
    return {
        "message": message,
        "event": event,
        "decision": decision,
        "delivery": delivery,
        "extraction": extraction,
        "notification": notification,
        "task": task,
        "reminder": reminder,
        "run": run,
    }


# (table, column, key of _one_of_each, how the column is stored encrypted)
STORED: list[tuple[str, str, str, Callable[[str], object]]] = [
    ("conversations_message", "content", "message", _is_envelope),
    ("conversations_message", "text", "message", TOKEN.match),
    ("channels_app_inboundevent", "body", "event", TOKEN.match),
    ("webhooks_webhookdelivery", "payload", "delivery", _is_envelope),
    ("extraction_extraction", "data", "extraction", _is_envelope),
    ("extraction_extraction", "dropped", "extraction", _is_envelope),
    ("extraction_extraction", "changes", "extraction", _is_envelope),
    ("inbox_notification", "title", "notification", TOKEN.match),
    ("inbox_notification", "body", "notification", TOKEN.match),
    ("automation_task", "title", "task", TOKEN.match),
    ("automation_task", "description", "task", TOKEN.match),
    ("automation_reminder", "text", "reminder", TOKEN.match),
    ("automation_assessmentrun", "answers", "run", _is_envelope),
    ("processing_routingdecision", "entities", "decision", _is_envelope),
]


def _raw_state(rows: dict[str, Any]) -> list[tuple[str, bool, bool]]:
    """Per column: whether it is stored encrypted, and whether it shows the plaintext."""
    state = []
    for table, column, key, encrypted in STORED:
        raw = _column(table, column, rows[key].pk)
        state.append((f"{table}.{column}", bool(encrypted(raw)), "4111" in raw))
    return state


def _reads_back(rows: dict[str, Any]) -> None:
    """Every row, read through the ORM, holds the plaintext."""
    assert Message.objects.get(pk=rows["message"].pk).text == SECRET
    event = InboundEvent.objects.get(pk=rows["event"].pk)
    assert json.loads(event.body) == {"text": SECRET}
    delivery = WebhookDelivery.objects.get(pk=rows["delivery"].pk)
    assert delivery.payload == {"text": SECRET}
    extraction = Extraction.objects.get(pk=rows["extraction"].pk)
    assert extraction.data == {"notes": SECRET}
    assert extraction.dropped[0]["value"] == SECRET
    assert extraction.changes == {"added": {"notes": SECRET}}
    notification = Notification.objects.get(pk=rows["notification"].pk)
    assert (notification.title, notification.body) == (SECRET, SECRET)
    task = Task.objects.get(pk=rows["task"].pk)
    assert (task.title, task.description) == (SECRET, SECRET)
    assert Reminder.objects.get(pk=rows["reminder"].pk).text == SECRET
    run = AssessmentRun.objects.get(pk=rows["run"].pk)
    assert run.answers == {"card": {"value": SECRET}}
    decision = RoutingDecision.objects.get(pk=rows["decision"].pk)
    assert decision.entities == [{"type": "card", "value": SECRET}]


ALL_ENCRYPTED = [(f"{table}.{column}", True, False) for table, column, _key, _ in STORED]
ALL_PLAIN = [(f"{table}.{column}", False, True) for table, column, _key, _ in STORED]


def test_every_copy_of_a_body_is_encrypted_only_for_the_tenant_that_asks(
    tenant_a, tenant_b
) -> None:
    _set_tenant(tenant_a, message_encryption=True)
    with tenant_a.schema():
        rows = _one_of_each(tenant_a)
        assert _raw_state(rows) == ALL_ENCRYPTED
        _reads_back(rows)
    with tenant_b.schema():
        plain = _one_of_each(tenant_b)
        assert _raw_state(plain) == ALL_PLAIN
        _reads_back(plain)


def test_the_daily_run_aligns_every_kind_with_the_setting(tenant_a, tenant_b) -> None:
    kinds = [
        "messages",
        "inbound_events",
        "webhook_deliveries",
        "extractions",
        "notifications",
        "tasks",
        "reminders",
        "assessment_runs",
        "routing_decisions",
    ]
    with tenant_a.schema():
        rows = _one_of_each(tenant_a)
        assert _raw_state(rows) == ALL_PLAIN
    with tenant_b.schema():
        untouched = _one_of_each(tenant_b)
    _set_tenant(tenant_a, message_encryption=True)
    with tenant_a.schema():
        run = retention_apply()
        assert {kind: run.counts[f"{kind}_encrypted"] for kind in kinds} == dict.fromkeys(kinds, 1)
        assert _raw_state(rows) == ALL_ENCRYPTED
        _reads_back(rows)
        # Nothing left: a second run rewrites nothing.
        assert set(encryption_align().values()) == {0}
    with tenant_b.schema():
        assert _raw_state(untouched) == ALL_PLAIN
    _set_tenant(tenant_a, message_encryption=False)
    with tenant_a.schema():
        counts = encryption_align()
        assert {kind: counts[f"{kind}_decrypted"] for kind in kinds} == dict.fromkeys(kinds, 1)
        assert _raw_state(rows) == ALL_PLAIN
        _reads_back(rows)


def test_alignment_goes_in_batches_up_to_its_limit(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        for n in range(5):
            _receive(conversation, f"{SECRET} #{n}")
    _set_tenant(tenant_a, message_encryption=True)
    with tenant_a.schema():
        assert encryption_align(limit=3)["messages_encrypted"] == 3
        assert encryption_align(limit=3)["messages_encrypted"] == 2
        assert encryption_align(limit=3)["messages_encrypted"] == 0


def test_key_rotation_reencrypts_every_copy_and_the_old_key_can_go(
    tenant_a, tenant_b, settings
) -> None:
    key_a = settings.HUB_FIELD_KEYS[0]
    _set_tenant(tenant_a, message_encryption=True)
    with tenant_a.schema():
        rows = _one_of_each(tenant_a)
        before = {
            (table, column): _column(table, column, rows[key].pk)
            for table, column, key, _ in STORED
        }
    with tenant_b.schema():
        plain = _one_of_each(tenant_b)
        plain_before = _raw_state(plain)
        # Stored plain, shaped like a token that no key decrypts: the customer's text.
        lookalike = _receive(plain["message"].conversation, LOOKALIKE)
    key_b = Fernet.generate_key().decode()
    settings.HUB_FIELD_KEYS = [key_b, key_a]
    out = io.StringIO()
    call_command("rotate_field_keys", stdout=out)
    # Two channels' credentials, two subscriptions' secrets, and tenant A's columns.
    assert out.getvalue().strip() == f"Re-encrypted {4 + len(STORED)} value(s)."
    settings.HUB_FIELD_KEYS = [key_b]
    with tenant_a.schema():
        assert _raw_state(rows) == ALL_ENCRYPTED
        for table, column, key, _ in STORED:
            assert _column(table, column, rows[key].pk) != before[(table, column)]
        _reads_back(rows)
    with tenant_b.schema():
        assert _raw_state(plain) == plain_before
        _reads_back(plain)
        assert _column("conversations_message", "text", lookalike.pk) == LOOKALIKE
        assert Message.objects.get(pk=lookalike.pk).text == LOOKALIKE
    # Everything is under the first key now: a second run has nothing to do.
    again = io.StringIO()
    call_command("rotate_field_keys", stdout=again)
    assert again.getvalue().strip() == "Re-encrypted 0 value(s)."
