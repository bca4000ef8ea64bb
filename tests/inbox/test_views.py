"""The inbox pages and fragments, through Django's test client: who may open them, what they
show, and the actions behind their forms."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client

from agents.models import Agent
from conversations.models import Conversation, Message, Operator
from conversations.services.messages import message_receive
from inbox.models import Notification
from inbox.services import notification_create
from tests.factories import (
    ChannelFactory,
    ConversationFactory,
    OperatorFactory,
    UserFactory,
)

JSON: dict[str, Any] = {"HTTP_ACCEPT": "application/json"}


def _inbox(tenant: Any, rest: str = "") -> str:
    return f"/t/{tenant.slug}/inbox/{rest}"


def _signed_in(tenant: Any, **user_fields: Any) -> tuple[Client, Any]:
    client = Client()
    with tenant.schema():
        user = UserFactory.create(**user_fields)
        client.force_login(user)
    return client, user


@pytest.fixture
def operator_client(tenant_a: Any) -> tuple[Client, Operator]:
    client, user = _signed_in(tenant_a)
    with tenant_a.schema():
        operator = OperatorFactory.create(user=user, display_name="Ada Lovelace")
    return client, operator


def _conversation(
    tenant: Any, *, ai: bool = True, text: str = "Where is my order?"
) -> Conversation:
    with tenant.schema():
        agent = Agent.objects.create(name="Helper") if ai else None
        conversation = ConversationFactory.create(
            channel=ChannelFactory.create(agent=agent), ai_active=ai
        )
        message_receive(
            conversation=conversation,
            contact=conversation.contact,
            content={"type": "text", "text": text},
        )
        return conversation


# --- Who may open the inbox -------------------------------------------------------------------


def test_anonymous_is_sent_to_the_tenant_admin_login(tenant_a) -> None:
    response = Client().get(_inbox(tenant_a))
    assert response.status_code == 302
    assert response["Location"] == f"/t/{tenant_a.slug}/admin/login/?next=/t/{tenant_a.slug}/inbox/"
    fragment = Client().get(_inbox(tenant_a, f"c/{uuid.uuid4()}/row/"), **JSON)
    assert fragment.status_code == 401
    assert fragment.json()["error"]["code"] == "not_authenticated"


def test_staff_user_becomes_an_operator_on_the_first_visit(tenant_a) -> None:
    client, user = _signed_in(tenant_a, first_name="Grace", last_name="Hopper")
    response = client.get(_inbox(tenant_a))
    assert response.status_code == 200
    with tenant_a.schema():
        operator = Operator.objects.get(user=user)
    assert operator.display_name == "Grace Hopper"
    assert operator.role == Operator.Role.OPERATOR
    assert b"Grace Hopper" in response.content
    # Once: a second visit finds the same operator.
    assert client.get(_inbox(tenant_a)).status_code == 200
    with tenant_a.schema():
        assert Operator.objects.filter(user=user).count() == 1


def test_a_user_who_is_not_staff_nor_an_operator_is_refused(tenant_a) -> None:
    client, user = _signed_in(tenant_a, is_staff=False)
    response = client.get(_inbox(tenant_a))
    assert response.status_code == 403
    assert b"Not an operator" in response.content
    with tenant_a.schema():
        assert not Operator.objects.filter(user=user).exists()
    assert client.get(_inbox(tenant_a, "list/"), **JSON).status_code == 403


def test_another_tenants_session_is_anonymous_here(tenant_a, tenant_b, operator_client) -> None:
    client, _ = operator_client
    assert client.get(_inbox(tenant_a)).status_code == 200
    response = client.get(_inbox(tenant_b))
    assert response.status_code == 302
    assert response["Location"].startswith(f"/t/{tenant_b.slug}/admin/login/")


def test_a_tenant_domain_serves_the_inbox_at_its_root(tenant_a, operator_client) -> None:
    from tenants.models import Domain

    client, _ = operator_client
    Domain.objects.create(domain="help.acme.test", tenant=tenant_a.tenant, is_primary=False)
    response = client.get("/inbox/", HTTP_HOST="help.acme.test")
    assert response.status_code == 200
    assert b'data-socket-path="/ws/inbox/"' in response.content
    assert b'data-socket-path="/t/' not in response.content
    page = client.get(_inbox(tenant_a))
    assert f'data-socket-path="/t/{tenant_a.slug}/ws/inbox/"'.encode() in page.content


# --- The list and the conversation ------------------------------------------------------------


def test_the_list_shows_the_views_with_unread_counts(tenant_a, operator_client) -> None:
    client, operator = operator_client
    unassigned = _conversation(tenant_a, text="Unassigned question")
    mine = _conversation(tenant_a, text="My question")
    resolved = _conversation(tenant_a, text="Old question")
    with tenant_a.schema():
        Conversation.objects.filter(pk=mine.pk).update(assignee=operator)
        Conversation.objects.filter(pk=resolved.pk).update(status="resolved")
    page = client.get(_inbox(tenant_a))
    body = page.content.decode()
    assert "Unassigned question" in body
    assert "My question" in body
    assert "Old question" not in body
    assert page.context["counts"].mine == 1
    assert page.context["counts"].unassigned == 1
    rows = {c.pk: c for c in page.context["conversations"]}
    assert rows[unassigned.pk].unread_count == 1

    only_mine = client.get(_inbox(tenant_a), {"view": "mine"}).context["conversations"]
    assert [c.pk for c in only_mine] == [mine.pk]
    only_unassigned = client.get(_inbox(tenant_a), {"view": "unassigned"}).context["conversations"]
    assert [c.pk for c in only_unassigned] == [unassigned.pk]
    done = client.get(_inbox(tenant_a), {"status": "resolved"}).context["conversations"]
    assert [c.pk for c in done] == [resolved.pk]
    # Unknown filters fall back to the defaults instead of failing.
    assert client.get(_inbox(tenant_a), {"view": "x", "status": "y"}).status_code == 200


def test_a_conversation_page_shows_the_thread_and_another_tenants_is_not_found(
    tenant_a, tenant_b, operator_client
) -> None:
    client, _ = operator_client
    conversation = _conversation(tenant_a, text="Hello <script>alert(1)</script>")
    page = client.get(_inbox(tenant_a, f"c/{conversation.pk}/"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Hello &lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<script>alert(1)" not in body
    assert "Take over" in body
    other = _conversation(tenant_b)
    assert client.get(_inbox(tenant_a, f"c/{other.pk}/")).status_code == 404
    pane = client.get(_inbox(tenant_a, f"c/{other.pk}/pane/"))
    assert pane.status_code == 404
    assert pane.json()["error"]["code"] == "not_found"


def test_older_messages_page_by_seq(tenant_a, operator_client) -> None:
    client, _ = operator_client
    conversation = _conversation(tenant_a, text="first")
    with tenant_a.schema():
        for index in range(2, 61):
            message_receive(
                conversation=conversation,
                contact=conversation.contact,
                content={"type": "text", "text": f"message {index}"},
            )
    page = client.get(_inbox(tenant_a, f"c/{conversation.pk}/"))
    seqs = [m.seq for m in page.context["thread"]]
    assert seqs == list(range(11, 61))
    assert page.context["has_older"] is True
    older = client.get(_inbox(tenant_a, f"c/{conversation.pk}/messages/"), {"before_seq": 11})
    assert older.json()["first_seq"] == 1
    assert older.json()["last_seq"] == 10
    assert older.json()["has_older"] is False
    newer = client.get(_inbox(tenant_a, f"c/{conversation.pk}/messages/"), {"after_seq": 58})
    assert (newer.json()["first_seq"], newer.json()["last_seq"]) == (59, 60)
    assert "message 60" in newer.json()["html"]
    bad = client.get(_inbox(tenant_a, f"c/{conversation.pk}/messages/"), {"after_seq": "x"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "validation_error"


def test_a_row_leaves_a_list_it_no_longer_belongs_to(tenant_a, operator_client) -> None:
    client, operator = operator_client
    conversation = _conversation(tenant_a, text="Row test")
    url = _inbox(tenant_a, f"c/{conversation.pk}/row/")
    row = client.get(url, {"view": "unassigned", "status": "open"}).json()
    assert "Row test" in row["row"]
    assert row["counts"]["unassigned"] >= 1
    with tenant_a.schema():
        Conversation.objects.filter(pk=conversation.pk).update(assignee=operator)
    assert client.get(url, {"view": "unassigned", "status": "open"}).json()["row"] is None
    assert "Row test" in client.get(url, {"view": "mine"}).json()["row"]


# --- Replies and actions through the forms --------------------------------------------------


def test_a_reply_is_sent_as_the_operator_and_takes_over_from_the_ai(
    tenant_a, operator_client
) -> None:
    client, operator = operator_client
    conversation = _conversation(tenant_a)
    url = _inbox(tenant_a, f"c/{conversation.pk}/reply/")
    response = client.post(url, {"text": " On its way! ", "client_id": "c-1"}, **JSON)
    assert response.status_code == 200
    assert response.json()["created"] is True
    repeated = client.post(url, {"text": "On its way!", "client_id": "c-1"}, **JSON)
    assert repeated.json()["message_id"] == response.json()["message_id"]
    with tenant_a.schema():
        message = Message.objects.get(pk=response.json()["message_id"])
        conversation.refresh_from_db()
        assert Message.objects.filter(conversation=conversation, client_id="c-1").count() == 1
    assert message.content == {"type": "text", "text": "On its way!"}
    assert message.sender_type == "operator"
    assert message.sender_operator_id == operator.pk
    assert message.direction == "out"
    assert conversation.ai_active is False
    assert conversation.assignee_id == operator.pk

    # Without JavaScript the form posts and lands back on the conversation.
    plain = client.post(url, {"text": "Anything else?"})
    assert plain.status_code == 302
    assert plain["Location"] == _inbox(tenant_a, f"c/{conversation.pk}/")


def test_a_private_note_is_not_delivered_and_does_not_take_over(tenant_a, operator_client) -> None:
    client, _ = operator_client
    conversation = _conversation(tenant_a)
    response = client.post(
        _inbox(tenant_a, f"c/{conversation.pk}/reply/"),
        {"text": "VIP customer", "private": "1"},
        **JSON,
    )
    with tenant_a.schema():
        note = Message.objects.get(pk=response.json()["message_id"])
        conversation.refresh_from_db()
    assert note.is_private is True
    assert note.status == "sent"
    assert conversation.ai_active is True
    assert conversation.assignee_id is None


def test_an_empty_or_oversized_reply_is_refused_and_nothing_is_stored(
    tenant_a, operator_client
) -> None:
    client, _ = operator_client
    conversation = _conversation(tenant_a)
    url = _inbox(tenant_a, f"c/{conversation.pk}/reply/")
    for text in ("   ", "x" * 4097):
        response = client.post(url, {"text": text}, **JSON)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "validation_error"
    with tenant_a.schema():
        assert not Message.objects.filter(conversation=conversation, direction="out").exists()


def test_posts_need_the_csrf_token(tenant_a) -> None:
    client = Client(enforce_csrf_checks=True)
    with tenant_a.schema():
        user = UserFactory.create()
        client.force_login(user)
    conversation = _conversation(tenant_a)
    response = client.post(_inbox(tenant_a, f"c/{conversation.pk}/reply/"), {"text": "hi"})
    assert response.status_code == 403
    with tenant_a.schema():
        assert not Message.objects.filter(conversation=conversation, direction="out").exists()


def test_take_over_hand_back_assign_snooze_resolve(tenant_a, operator_client) -> None:
    client, operator = operator_client
    conversation = _conversation(tenant_a)
    url = _inbox(tenant_a, f"c/{conversation.pk}/action/")

    def state() -> Conversation:
        with tenant_a.schema():
            return Conversation.objects.get(pk=conversation.pk)

    assert client.post(url, {"action": "take_over"}, **JSON).json()["ai_active"] is False
    assert (state().ai_active, state().assignee_id) == (False, operator.pk)
    assert client.post(url, {"action": "hand_back"}, **JSON).json()["ai_active"] is True
    assert state().ai_active is True

    with tenant_a.schema():
        colleague = OperatorFactory.create()
    client.post(url, {"action": "assign", "operator": str(colleague.pk)}, **JSON)
    assert state().assignee_id == colleague.pk
    client.post(url, {"action": "assign", "operator": ""}, **JSON)
    assert state().assignee_id is None

    assert client.post(url, {"action": "snooze", "until": "4h"}, **JSON).status_code == 200
    assert state().status == "snoozed"
    assert state().snoozed_until is not None
    client.post(url, {"action": "resolve"}, **JSON)
    assert (state().status, state().snoozed_until) == ("resolved", None)
    client.post(url, {"action": "reopen"}, **JSON)
    assert state().status == "open"


def test_bad_actions_are_refused_with_the_reason(tenant_a, tenant_b, operator_client) -> None:
    client, _ = operator_client
    conversation = _conversation(tenant_a)
    url = _inbox(tenant_a, f"c/{conversation.pk}/action/")
    with tenant_b.schema():
        stranger = OperatorFactory.create()
    cases = [
        ({"action": "dance"}, "invalid_action"),
        ({"action": "assign", "operator": str(stranger.pk)}, "validation_error"),
        ({"action": "assign", "operator": "nope"}, "validation_error"),
        ({"action": "snooze", "until": "someday"}, "validation_error"),
        ({"action": "snooze", "until": "2020-01-01T00:00:00+00:00"}, "invalid_status"),
    ]
    for data, code in cases:
        response = client.post(url, data, **JSON)
        assert response.status_code == 400, data
        assert response.json()["error"]["code"] == code, data
    with tenant_a.schema():
        conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee_id) == ("open", None)
    no_agent = _conversation(tenant_a, ai=False)
    refused = client.post(
        _inbox(tenant_a, f"c/{no_agent.pk}/action/"), {"action": "hand_back"}, **JSON
    )
    assert refused.json()["error"]["code"] == "no_agent"
    # Without JavaScript the reason is shown on the page the form came from.
    plain = client.post(url, {"action": "dance"}, HTTP_REFERER="https://evil.test/")
    assert plain.status_code == 302
    assert plain["Location"] == _inbox(tenant_a)


def test_availability(tenant_a, operator_client) -> None:
    client, operator = operator_client
    url = _inbox(tenant_a, "availability/")
    assert client.post(url, {"availability": "away"}, **JSON).json() == {"availability": "away"}
    with tenant_a.schema():
        operator.refresh_from_db()
    assert operator.availability == "away"
    assert client.post(url, {"availability": "asleep"}, **JSON).status_code == 400


# --- Notifications --------------------------------------------------------------------------


def test_notifications_show_for_their_operator_and_are_marked_read(
    tenant_a, operator_client
) -> None:
    client, operator = operator_client
    with tenant_a.schema():
        colleague = OperatorFactory.create()
        team = notification_create(kind="low_credits", title="Credits are running low")
        personal = notification_create(kind="handoff", title="For you", operator_id=operator.pk)
        theirs = notification_create(kind="handoff", title="For them", operator_id=colleague.pk)
    page = client.get(_inbox(tenant_a))
    body = page.content.decode()
    assert "Credits are running low" in body
    assert "For you" in body
    assert "For them" not in body
    assert page.context["notifications_unread"] == 2

    read = client.post(_inbox(tenant_a, f"notifications/{team.pk}/read/"), **JSON)
    assert read.status_code == 200
    foreign = client.post(_inbox(tenant_a, f"notifications/{theirs.pk}/read/"), **JSON)
    assert foreign.status_code == 404
    with tenant_a.schema():
        assert Notification.objects.get(pk=team.pk).read_at is not None
        assert Notification.objects.get(pk=theirs.pk).read_at is None
    assert client.post(_inbox(tenant_a, "notifications/read-all/"), **JSON).json() == {"marked": 1}
    with tenant_a.schema():
        assert Notification.objects.get(pk=personal.pk).read_at is not None
        assert Notification.objects.get(pk=theirs.pk).read_at is None
