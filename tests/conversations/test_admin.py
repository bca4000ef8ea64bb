"""The tenant admin for the conversation domain, through its pages, as a signed-in superuser."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any, cast

import pytest
from asgiref.sync import async_to_sync
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app.models import Channel, ChannelKind
from conversations.models import (
    Attachment,
    Contact,
    ContactIdentity,
    Conversation,
    Message,
    Operator,
)
from conversations.services.messages import message_create
from tests.factories import (
    ChannelFactory,
    ContactFactory,
    ContactIdentityFactory,
    ConversationFactory,
    OperatorFactory,
    UserFactory,
)

SECRET = "123:SECRET"


def _admin(tenant: Any) -> str:
    return f"/t/{tenant.slug}/admin"


def _login(client: Client, tenant: Any, username: str) -> Any:
    with tenant.schema():
        user = UserFactory.create(username=username, is_superuser=True)
        client.force_login(user)
    return user


@pytest.fixture
def admin_a(tenant_a: Any, client: Client) -> Client:
    _login(client, tenant_a, "root_a")
    return client


def _say(conversation: Conversation, content: dict[str, Any], **kwargs: Any) -> Message:
    options: dict[str, Any] = {
        "direction": "in",
        "sender_type": "contact",
        "status": "received",
        "sender_contact": conversation.contact,
    }
    options.update(kwargs)
    message, _ = message_create(conversation=conversation, content=content, **options)
    return message


def _action(client: Client, url: str, action: str, objects: list[Any], **extra: str) -> Any:
    return client.post(
        url,
        {"action": action, ACTION_CHECKBOX_NAME: [str(o.pk) for o in objects], **extra},
        follow=True,
    )


def _messages(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def world(tenant_a: Any, admin_a: Client) -> dict[str, Any]:
    """One of everything, with a Telegram channel holding a secret."""
    with tenant_a.schema():
        channel = ChannelFactory.create(
            kind=ChannelKind.TELEGRAM,
            name="Support bot",
            config={"bot_token": SECRET, "webhook_secret": "hook-SECRET"},
        )
        contact = ContactFactory.create(name="Ada", email="ada@example.test", phone="+4477001")
        identity = ContactIdentityFactory.create(
            contact=contact, channel_kind=ChannelKind.TELEGRAM, external_id="tg-42"
        )
        operator = OperatorFactory.create(display_name="Grace")
        conversation = ConversationFactory.create(
            channel=channel, contact=contact, assignee=operator, labels=["vip"]
        )
        message = _say(conversation, {"type": "text", "text": "hello there"})
        Attachment.objects.create(
            conversation=conversation,
            message=message,
            file="attachments/x/y/receipt.pdf",
            filename="receipt.pdf",
            content_type="application/pdf",
            size=3,
        )
    return {
        "channel": channel,
        "contact": contact,
        "identity": identity,
        "operator": operator,
        "conversation": conversation,
        "message": message,
    }


def test_every_page_renders_and_no_channel_secret_is_shown(
    tenant_a: Any, admin_a: Client, world: dict[str, Any]
) -> None:
    base = _admin(tenant_a)
    pages = [
        f"{base}/",
        f"{base}/conversations/",
        f"{base}/channels_app/channel/",
        f"{base}/channels_app/channel/add/",
        f"{base}/channels_app/channel/{world['channel'].pk}/change/",
        f"{base}/channels_app/channel/{world['channel'].pk}/history/",
        f"{base}/channels_app/channel/{world['channel'].pk}/delete/",
        f"{base}/conversations/operator/",
        f"{base}/conversations/operator/add/",
        f"{base}/conversations/operator/{world['operator'].pk}/change/",
        f"{base}/conversations/contact/",
        f"{base}/conversations/contact/add/",
        f"{base}/conversations/contact/{world['contact'].pk}/change/",
        f"{base}/conversations/contactidentity/",
        f"{base}/conversations/contactidentity/{world['identity'].pk}/change/",
        f"{base}/conversations/conversation/",
        f"{base}/conversations/conversation/{world['conversation'].pk}/change/",
        f"{base}/conversations/message/",
        f"{base}/conversations/message/{world['message'].pk}/change/",
        f"{base}/conversations/message/?conversation={world['conversation'].pk}",
    ]
    for page in pages:
        response = admin_a.get(page)
        assert response.status_code == 200, page
        assert b"SECRET" not in response.content, page
    channel_page = admin_a.get(f"{base}/channels_app/channel/{world['channel'].pk}/change/")
    # The key names are shown, so an admin sees what is configured; the webhook URL too.
    assert b"bot_token, webhook_secret" in channel_page.content
    assert world["channel"].channel_token.encode() in channel_page.content
    assert f"/webhooks/{tenant_a.slug}/telegram/".encode() in channel_page.content
    assert b'name="config"' not in channel_page.content
    listing = admin_a.get(f"{base}/channels_app/channel/")
    assert b"Support bot" in listing.content


def test_saving_a_channel_keeps_its_credentials(
    tenant_a: Any, admin_a: Client, world: dict[str, Any]
) -> None:
    channel = world["channel"]
    response = admin_a.post(
        f"{_admin(tenant_a)}/channels_app/channel/{channel.pk}/change/",
        {"name": "Renamed bot", "agent": "", "enabled": "on"},
    )
    assert response.status_code == 302
    with tenant_a.schema():
        channel = Channel.objects.get(pk=channel.pk)
    assert channel.name == "Renamed bot"
    assert channel.kind == ChannelKind.TELEGRAM
    assert channel.config["bot_token"] == SECRET


def test_the_conversation_page_shows_its_thread_in_seq_order(
    tenant_a: Any, admin_a: Client, world: dict[str, Any]
) -> None:
    conversation = world["conversation"]
    with tenant_a.schema():
        _say(conversation, {"type": "image", "url": "https://x.test/p.jpg", "caption": "a cat"})
        _say(conversation, {"type": "location", "latitude": 1.5, "longitude": 2, "name": "Dock"})
        _say(
            conversation,
            {"type": "buttons", "text": "Pick", "buttons": [{"id": "y", "title": "Yes"}]},
            direction="out",
            sender_type="ai",
            status="sent",
            sender_contact=None,
        )
        _say(
            conversation,
            {"type": "text", "text": "VIP, be kind"},
            direction="out",
            sender_type="operator",
            status="sent",
            sender_contact=None,
            sender_operator=world["operator"],
            is_private=True,
        )
        gone = _say(conversation, {"type": "text", "text": "oops wrong chat"})
        Message.objects.filter(pk=gone.pk).update(deleted_at=timezone.now())
        # Times run backwards, so only an order by seq shows the thread as written.
        for message in Message.objects.filter(conversation=conversation):
            Message.objects.filter(pk=message.pk).update(
                created_at=timezone.now() - timedelta(minutes=message.seq)
            )
    response = admin_a.get(
        f"{_admin(tenant_a)}/conversations/conversation/{conversation.pk}/change/"
    )
    assert response.status_code == 200
    html = response.content.decode()
    thread = html[html.index('id="thread"') :]
    expected = [
        "hello there",
        "receipt.pdf",
        "[image] a cat",
        "[location] Dock (1.5, 2.0)",
        "Pick [buttons: Yes]",
        "VIP, be kind",
        "private note",
        "oops wrong chat",
        "<em>deleted",
    ]
    positions = [thread.index(text) for text in expected]
    assert positions == sorted(positions)
    assert [line.seq for line in response.context["thread"]] == [1, 2, 3, 4, 5, 6]
    participants = html[html.index('id="participants"') : html.index('id="thread"')]
    assert "Ada" in participants
    assert "Customer" in participants
    senders = [line.sender for line in response.context["thread"]]
    assert senders == ["Ada", "Ada", "Ada", "AI", "Grace", "Ada"]


def test_editing_a_conversation_goes_through_the_rules(
    tenant_a: Any, admin_a: Client, world: dict[str, Any]
) -> None:
    conversation = world["conversation"]
    url = f"{_admin(tenant_a)}/conversations/conversation/{conversation.pk}/change/"
    form = {
        "status": "snoozed",
        "snoozed_until_0": "",
        "snoozed_until_1": "",
        "priority": "3",
        "assignee": str(world["operator"].pk),
        "labels": "vip, billing",
        "ai_active": "on",
    }
    refused = admin_a.post(url, form)
    assert refused.status_code == 200
    assert "snoozed_until" in refused.context["adminform"].form.errors
    form["status"] = "pending"
    assert admin_a.post(url, form).status_code == 302
    with tenant_a.schema():
        conversation.refresh_from_db()
    assert conversation.status == "pending"
    assert conversation.priority == Conversation.Priority.HIGH
    assert conversation.labels == ["billing", "vip"]


def test_resolve_action(tenant_a: Any, admin_a: Client) -> None:
    with tenant_a.schema():
        first, second = ConversationFactory.create_batch(2)
        untouched = ConversationFactory.create()
    response = _action(
        admin_a,
        f"{_admin(tenant_a)}/conversations/conversation/",
        "resolve",
        [first, second],
    )
    assert "Resolved 2 conversation(s)." in _messages(response)
    with tenant_a.schema():
        statuses = dict(Conversation.objects.values_list("pk", "status"))
    assert statuses[first.pk] == statuses[second.pk] == "resolved"
    assert statuses[untouched.pk] == "open"


def test_assign_to_me_needs_an_operator(tenant_a: Any, client: Client) -> None:
    user = _login(client, tenant_a, "root_assign")
    url = f"{_admin(tenant_a)}/conversations/conversation/"
    with tenant_a.schema():
        conversation = ConversationFactory.create()
    refused = _action(client, url, "assign_to_me", [conversation])
    assert any("not an operator" in m for m in _messages(refused))
    with tenant_a.schema():
        me = OperatorFactory.create(user=user, display_name="Me")
    response = _action(client, url, "assign_to_me", [conversation])
    assert "Assigned 1 conversation(s) to Me." in _messages(response)
    with tenant_a.schema():
        conversation.refresh_from_db()
        assert conversation.assignee_id == me.pk
        assert conversation.participants.filter(operator=me).exists()


def test_merge_action_merges_the_newer_into_the_older(tenant_a: Any, admin_a: Client) -> None:
    url = f"{_admin(tenant_a)}/conversations/contact/"
    with tenant_a.schema():
        older = ContactFactory.create(name="Old", email="")
        newer = ContactFactory.create(name="New", email="new@example.test")
        Contact.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(days=1))
        ContactIdentityFactory.create(contact=newer, external_id="visitor-new")
        conversation = ConversationFactory.create(contact=newer)
        third = ContactFactory.create()
        erased = ContactFactory.create(erased_at=timezone.now())
    refused = _action(admin_a, url, "merge_contacts", [older, erased])
    assert "Erased contacts cannot be merged." in _messages(refused)
    refused = _action(admin_a, url, "merge_contacts", [older])
    assert "Select exactly two contacts to merge." in _messages(refused)
    refused = _action(admin_a, url, "merge_contacts", [older, newer, third])
    assert "Select exactly two contacts to merge." in _messages(refused)
    response = _action(admin_a, url, "merge_contacts", [newer, older])
    assert any('Merged "New" into' in m for m in _messages(response))
    with tenant_a.schema():
        assert not Contact.objects.filter(pk=newer.pk).exists()
        older.refresh_from_db()
        assert older.name == "Old"
        assert older.email == "new@example.test"
        assert older.identities.get().external_id == "visitor-new"
        assert Conversation.objects.get(pk=conversation.pk).contact_id == older.pk


def test_erase_action_asks_first_then_erases(
    tenant_a: Any, admin_a: Client, world: dict[str, Any]
) -> None:
    url = f"{_admin(tenant_a)}/conversations/contact/"
    contact = world["contact"]
    confirm = admin_a.post(
        url, {"action": "erase_contacts", ACTION_CHECKBOX_NAME: [str(contact.pk)]}
    )
    assert confirm.status_code == 200
    assert b"cannot be undone" in confirm.content
    assert b"Ada" in confirm.content
    with tenant_a.schema():
        assert Contact.objects.get(pk=contact.pk).erased_at is None
    response = _action(admin_a, url, "erase_contacts", [contact], post="yes")
    assert "Erased 1 contact(s)." in _messages(response)
    with tenant_a.schema():
        contact.refresh_from_db()
        assert contact.erased_at is not None
        assert contact.name == contact.email == contact.phone == ""
        assert not ContactIdentity.objects.filter(contact=contact).exists()
        message = Message.objects.get(pk=world["message"].pk)
        assert message.text == ""
        assert message.deleted_at is not None
        assert not Attachment.objects.filter(message=message).exists()
    listing = admin_a.get(url)
    assert b"(erased contact)" in listing.content
    assert b"Ada" not in listing.content
    change = admin_a.get(f"{url}{contact.pk}/change/")
    assert change.status_code == 200
    assert b'name="name"' not in change.content  # read-only once erased


def _export(rows: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(rows.decode())))


def test_export_csv_streams_one_row_per_conversation(
    tenant_a: Any, admin_a: Client, world: dict[str, Any]
) -> None:
    with tenant_a.schema():
        _say(world["conversation"], {"type": "text", "text": "second"})
        evil = ContactFactory.create(name='=HYPERLINK("http://x")')
        quiet = ConversationFactory.create(contact=evil, channel=world["channel"])
    response = admin_a.post(
        f"{_admin(tenant_a)}/conversations/conversation/",
        {
            "action": "export_csv",
            ACTION_CHECKBOX_NAME: [str(world["conversation"].pk), str(quiet.pk)],
        },
    )
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment;" in response["Content-Disposition"]
    rows = _export(b"".join(cast(StreamingHttpResponse, response)))
    assert rows[0] == [
        "id",
        "contact",
        "channel",
        "status",
        "priority",
        "assignee",
        "labels",
        "created_at",
        "last_activity_at",
        "message_count",
    ]
    by_id = {row[0]: row for row in rows[1:]}
    assert len(rows) == 3
    row = by_id[str(world["conversation"].pk)]
    assert row[1:7] == ["Ada", "Support bot (telegram)", "open", "none", "Grace", "vip"]
    assert row[9] == "2"
    quiet_row = by_id[str(quiet.pk)]
    assert quiet_row[1] == '\'=HYPERLINK("http://x")'
    assert quiet_row[5] == ""
    assert quiet_row[9] == "0"


def test_export_csv_streams_in_batches_under_asgi(
    tenant_a: Any, admin_a: Client, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production serves ASGI, where Django would read a synchronous iterator whole first."""
    monkeypatch.setattr("conversations.admin.EXPORT_CHUNK", 2)
    with tenant_a.schema():
        more = ConversationFactory.create_batch(2, channel=world["channel"])
    selected = [str(c.pk) for c in [world["conversation"], *more]]
    async_client = AsyncClient()
    async_client.cookies = admin_a.cookies

    async def export() -> tuple[StreamingHttpResponse, list[bytes]]:
        response = cast(
            StreamingHttpResponse,
            await async_client.post(
                f"{_admin(tenant_a)}/conversations/conversation/",
                {"action": "export_csv", ACTION_CHECKBOX_NAME: selected},
            ),
        )
        assert response.is_async
        return response, [chunk async for chunk in response]

    response, chunks = async_to_sync(export)()
    assert response.status_code == 200
    assert len(chunks) == 2  # the header and three rows, two lines at a time
    rows = _export(b"".join(chunks))
    assert sorted(row[0] for row in rows[1:]) == sorted(selected)


def test_message_admin_is_read_only_with_a_soft_delete_action(
    tenant_a: Any, admin_a: Client, world: dict[str, Any]
) -> None:
    url = f"{_admin(tenant_a)}/conversations/message/"
    listing = admin_a.get(url)
    assert b"hello there" in listing.content
    assert admin_a.get(f"{url}add/").status_code == 403
    change = admin_a.get(f"{url}{world['message'].pk}/change/")
    assert b'name="text"' not in change.content
    response = _action(admin_a, url, "soft_delete", [world["message"]])
    assert "Deleted 1 message(s)." in _messages(response)
    with tenant_a.schema():
        message = Message.objects.get(pk=world["message"].pk)
    assert message.deleted_at is not None
    assert message.content == {"type": "text", "text": "hello there"}
    assert admin_a.get(f"{url}?q=hello").context["cl"].result_count == 1


def test_operator_list_counts_open_assigned_and_adding_picks_a_user(
    tenant_a: Any, admin_a: Client, world: dict[str, Any]
) -> None:
    base = f"{_admin(tenant_a)}/conversations/operator/"
    with tenant_a.schema():
        ConversationFactory.create(assignee=world["operator"])
        ConversationFactory.create(assignee=world["operator"], status="resolved")
        new_user = UserFactory.create(username="newbie")
    listing = admin_a.get(base)
    counts = {o.display_name: o.open_assigned_count for o in listing.context["cl"].result_list}
    assert counts == {"Grace": 2}
    response = admin_a.post(
        f"{base}add/",
        {
            "user": str(new_user.pk),
            "display_name": "Newbie",
            "role": "operator",
            "availability": "online",
            "capacity": "4",
        },
    )
    assert response.status_code == 302
    with tenant_a.schema():
        operator = Operator.objects.get(user=new_user)
    assert (operator.display_name, operator.availability, operator.capacity) == (
        "Newbie",
        "online",
        4,
    )
    autocomplete = admin_a.get(
        f"{_admin(tenant_a)}/autocomplete/",
        {
            "app_label": "conversations",
            "model_name": "operator",
            "field_name": "user",
            "term": "newb",
        },
    )
    assert autocomplete.status_code == 200
    assert autocomplete.json()["results"][0]["text"] == "newbie"


def test_adding_a_contact_and_searching_by_identity(tenant_a: Any, admin_a: Client) -> None:
    base = f"{_admin(tenant_a)}/conversations/contact/"
    response = admin_a.post(
        f"{base}add/",
        {
            "name": "Linus",
            "email": "linus@example.test",
            "phone": "",
            "avatar_url": "",
            "language": "",
            "attributes": "{}",
            "identities-TOTAL_FORMS": "0",
            "identities-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    with tenant_a.schema():
        contact = Contact.objects.get(name="Linus")
        ContactIdentityFactory.create(contact=contact, external_id="visitor-linus")
    found = admin_a.get(base, {"q": "visitor-linus"}).context["cl"].result_list
    assert [c.pk for c in found] == [contact.pk]
    assert found[0].identity_count == 1


def test_conversation_changelist_is_a_fixed_number_of_queries(
    tenant_a: Any, admin_a: Client
) -> None:
    url = f"{_admin(tenant_a)}/conversations/conversation/"

    def make(count: int) -> None:
        with tenant_a.schema():
            channels = ChannelFactory.create_batch(2)
            operators = OperatorFactory.create_batch(2)
            for index in range(count):
                ConversationFactory.create(
                    channel=channels[index % 2], assignee=operators[index % 2], labels=["a"]
                )

    def measure() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = admin_a.get(url)
        assert response.status_code == 200
        return len(queries)

    make(2)
    with_two = measure()
    make(18)
    with_twenty = measure()
    assert admin_a.get(url).context["cl"].result_count == 20
    assert with_twenty == with_two


def test_another_tenants_admin_sees_none_of_these_conversations(
    tenant_a: Any, tenant_b: Any, world: dict[str, Any]
) -> None:
    other = Client()
    _login(other, tenant_b, "root_b")
    base = _admin(tenant_b)
    listing = other.get(f"{base}/conversations/conversation/")
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 0
    assert b"Ada" not in listing.content
    response = other.get(f"{base}/conversations/conversation/{world['conversation'].pk}/change/")
    assert response.status_code in (302, 404)
    if response.status_code == 302:
        assert response["Location"] == f"{base}/"
    assert b"hello there" not in other.get(f"{base}/conversations/message/").content
