"""Message bodies encrypted at rest for a tenant that asks: ciphertext in the database,
plaintext on every path that reads through the ORM (API, admin, processing), search off, and
the daily job bringing stored rows in line when the setting changes."""

from __future__ import annotations

import json

from cryptography.fernet import Fernet
from django.db import connection

from conversations.models import Message
from conversations.services.messages import message_receive
from retention.encryption import TOKEN
from retention.services import messages_encryption_align
from tests.factories import ConversationFactory, UserFactory

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
        assert messages_encryption_align() == {"messages_encrypted": 1}
        assert set(_raw(before.pk)[0]) == {"$enc"}
        assert messages_encryption_align() == {"messages_encrypted": 0}
        # A rotated key: the old one still decrypts.
        settings.HUB_FIELD_KEYS = [Fernet.generate_key().decode(), *settings.HUB_FIELD_KEYS]
        assert Message.objects.get(pk=before.pk).text == "written before the switch"
    _set_tenant(tenant_a, message_encryption=False)
    with tenant_a.schema():
        assert messages_encryption_align() == {"messages_decrypted": 1}
        content, text, vector = _raw(before.pk)
        assert content == {"type": "text", "text": "written before the switch"}
        assert text == "written before the switch"
        assert "switch" in vector


def test_a_customer_text_that_looks_like_a_token_stays_text(tenant_a) -> None:
    lookalike = "gAAAAA" + "A" * 80
    with tenant_a.schema():
        message = _receive(ConversationFactory.create(), lookalike)
        assert Message.objects.get(pk=message.pk).text == lookalike
