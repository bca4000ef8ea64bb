"""Contact erasure goes through the retention machinery: its audit record, its files, its
leads, and legal holds, through the API and the admin."""

from __future__ import annotations

from pathlib import Path

from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.utils import timezone

from conversations.models import Contact, ContactIdentity, Conversation, Message
from conversations.services.contacts import contact_create
from extraction.models import Extraction
from retention.models import RetentionRun
from tests.factories import ConversationFactory, UserFactory
from tests.retention.conftest import attach, say
from tests.support import error_of


def _contact_with_data(now):
    contact = contact_create(identities=[("sms", "+15550001234")], name="Bob", phone="+15550001234")
    conversation = ConversationFactory.create(contact=contact)
    message = say(conversation, "my card is 4111", at=now)
    sent = attach(conversation, message=message, at=now)
    unsent = attach(conversation, message=None, at=now)
    Extraction.objects.create(
        conversation=conversation,
        contact=contact,
        version=1,
        data={"name": "Bob"},
        source="rules",
        trigger="manual",
        through_seq=1,
    )
    return contact, conversation, (sent, unsent)


def test_erasure_is_recorded_with_its_counts(tenant_a, media) -> None:
    now = timezone.now()
    with tenant_a.schema():
        contact, conversation, files = _contact_with_data(now)
    response = tenant_a.client().post(f"/api/v1/contacts/{contact.pk}/erase/", format="json")
    assert response.status_code == 200, response.content
    with tenant_a.schema():
        run = RetentionRun.objects.get()
        assert (run.kind, run.subject) == ("contact_erase", str(contact.pk))
        assert run.counts == {
            "messages_erased": 1,
            "attachments_deleted": 2,
            "files_deleted": 2,
            "extractions_deleted": 1,
        }
        assert not Extraction.objects.exists()
        message = Message.objects.get(conversation=conversation)
        assert message.content == {"type": "unsupported", "description": "erased"}
    assert not any(Path(f.file.path).exists() for f in files)


def test_a_legal_hold_refuses_erasure_and_keeps_everything(tenant_a, media) -> None:
    now = timezone.now()
    with tenant_a.schema():
        contact, conversation, files = _contact_with_data(now)
        Conversation.objects.filter(pk=conversation.pk).update(legal_hold=True)
    response = tenant_a.client().post(f"/api/v1/contacts/{contact.pk}/erase/", format="json")
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "legal_hold"
    assert error["details"] == {"conversations": [str(conversation.pk)]}
    with tenant_a.schema():
        stored = Contact.objects.get(pk=contact.pk)
        assert (stored.name, stored.erased_at) == ("Bob", None)
        assert ContactIdentity.objects.filter(contact=contact).exists()
        assert Message.objects.get(conversation=conversation).text == "my card is 4111"
        assert Extraction.objects.exists()
        assert not RetentionRun.objects.exists()
    assert all(Path(f.file.path).exists() for f in files)


def test_admin_places_and_lifts_holds_and_the_erase_action_respects_them(
    tenant_a, tenant_b, client
) -> None:
    base = f"/t/{tenant_a.slug}/admin"
    with tenant_a.schema():
        client.force_login(UserFactory.create(username="root", is_superuser=True))
        held, free = ConversationFactory.create(), ConversationFactory.create()
    holds = f"{base}/retention/heldconversation/"
    assert client.get(holds).status_code == 200
    response = client.post(
        holds, {"action": "place_hold", ACTION_CHECKBOX_NAME: [str(held.pk)]}, follow=True
    )
    assert "1 conversation(s) placed under legal hold." in response.content.decode()
    with tenant_a.schema():
        assert list(Conversation.objects.filter(legal_hold=True)) == [held]
    erase = client.post(
        f"{base}/conversations/contact/",
        {
            "action": "erase_contacts",
            "post": "yes",
            ACTION_CHECKBOX_NAME: [str(held.contact_id), str(free.contact_id)],
        },
        follow=True,
    )
    assert "Erased 1 contact(s); 1 kept: a conversation of theirs is under legal hold" in (
        erase.content.decode()
    )
    with tenant_a.schema():
        assert Contact.objects.get(pk=held.contact_id).erased_at is None
        assert Contact.objects.get(pk=free.contact_id).erased_at is not None
    assert client.get(f"{base}/retention/retentionrun/").status_code == 200
    client.post(holds, {"action": "lift_hold", ACTION_CHECKBOX_NAME: [str(held.pk)]})
    with tenant_a.schema():
        assert not Conversation.objects.filter(legal_hold=True).exists()
    # Another tenant's admin sees none of it.
    other = f"/t/{tenant_b.slug}/admin/retention/heldconversation/"
    with tenant_b.schema():
        client.force_login(UserFactory.create(username="root_b", is_superuser=True))
    assert str(held.pk) not in client.get(f"{other}?legal_hold__exact=1").content.decode()
