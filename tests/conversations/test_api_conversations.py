"""`conversations/`: list with filters, last message and unread count; retrieve, change, read,
mute, assign, status and participants."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import quote, unquote

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.models import Conversation, Message, Participant
from conversations.selectors import Reader, conversation_list_by_activity
from conversations.services.conversations import participant_mark_read
from conversations.services.messages import message_receive, message_send
from tenants.models import ApiKey
from tenants.services import api_key_issue
from tests.factories import ContactFactory, ConversationFactory, OperatorFactory
from tests.support import error_of

URL = "/api/v1/conversations/"
SOME_ID = b"7d4f3f2e-9c1b-4b7a-8f0e-2a6c5d4e3b21"


def _inbound(conversation: Conversation, text: str = "hello") -> Message:
    message, _ = message_receive(
        conversation=conversation,
        contact=conversation.contact,
        content={"type": "text", "text": text},
    )
    return message


def _outbound(conversation: Conversation, text: str = "hi there") -> Message:
    message, _ = message_send(
        conversation=conversation, content={"type": "text", "text": text}, sender_type="operator"
    )
    return message


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["results"]]


def test_list_has_last_message_and_unread_count_newest_activity_first(tenant_a) -> None:
    with tenant_a.schema():
        older = ConversationFactory.create()
        _inbound(older, "first")
        newer = ConversationFactory.create()
        _inbound(newer, "one")
        _inbound(newer, "two")
        _outbound(newer, "answer")
    response = tenant_a.client().get(URL)
    assert _ids(response)[:2] == [str(newer.pk), str(older.pk)]
    item = response.json()["results"][0]
    assert item["last_message"]["content"] == {"type": "text", "text": "answer"}
    assert item["last_message"]["seq"] == 3
    # Inbound messages after the key's read position (none yet); outbound ones do not count.
    assert item["unread_count"] == 2
    assert item["contact"]["id"] == str(newer.contact_id)
    assert item["channel"] == str(newer.channel_id)


def test_unread_count_is_per_api_key_and_follows_its_read_position(tenant_a) -> None:
    client = tenant_a.client()
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        for text in ("a", "b", "c"):
            _inbound(conversation, text)
    url = f"{URL}{conversation.pk}/"
    assert client.get(url).json()["unread_count"] == 3
    read = client.post(f"{url}read/", {"seq": 2}, format="json")
    assert read.status_code == 200, read.content
    assert read.json() == {
        "conversation": str(conversation.pk),
        "last_read_seq": 2,
        "muted": False,
        "unread_count": 1,
    }
    assert client.get(url).json()["unread_count"] == 1
    # Never back, and by default up to the newest.
    assert client.post(f"{url}read/", {"seq": 1}, format="json").json()["last_read_seq"] == 2
    assert client.post(f"{url}read/", {}, format="json").json()["unread_count"] == 0
    with tenant_a.schema():
        _inbound(conversation, "d")
    assert client.get(url).json()["unread_count"] == 1
    # Another key of the tenant has its own position.
    other = api_key_issue(tenant=tenant_a.tenant, name="other")
    other_client = tenant_a.client()
    other_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other.raw_key}")
    assert other_client.get(url).json()["unread_count"] == 4
    listed = {item["id"]: item for item in client.get(URL).json()["results"]}
    assert listed[str(conversation.pk)]["unread_count"] == 1
    with tenant_a.schema():
        key_ids = set(
            Participant.objects.filter(
                conversation=conversation, api_key_id__isnull=False
            ).values_list("api_key_id", flat=True)
        )
    assert key_ids == {ApiKey.objects.get(prefix=tenant_a.api_key.split("_")[1]).pk}


def test_filters(tenant_a) -> None:
    with tenant_a.schema():
        operator = OperatorFactory.create()
        open_one = ConversationFactory.create(labels=["vip"])
        _inbound(open_one, "Where is my parcel?")
        resolved = ConversationFactory.create(status="resolved", assignee=operator)
        _inbound(resolved, "Thanks, the refund arrived")
        Conversation.objects.filter(pk=resolved.pk).update(status="resolved")
        other_channel = ConversationFactory.create()
    client = tenant_a.client()

    def ids(**params: str) -> set[str]:
        return set(_ids(client.get(URL, params)))

    assert ids(status="resolved") == {str(resolved.pk)}
    assert str(open_one.pk) in ids(status="open")
    assert ids(channel=str(other_channel.channel_id)) == {str(other_channel.pk)}
    assert ids(assignee=str(operator.pk)) == {str(resolved.pk)}
    assert str(resolved.pk) not in ids(assignee="none")
    assert str(open_one.pk) in ids(assignee="none")
    assert ids(label="vip") == {str(open_one.pk)}
    assert ids(q="parcel") == {str(open_one.pk)}
    assert ids(q="refund") == {str(resolved.pk)}
    assert ids(q="parcel refund") == set()
    assert ids(q='"my parcel"') == {str(open_one.pk)}
    assert ids(status="open", label="vip", q="parcel") == {str(open_one.pk)}
    future = (timezone.now() + timedelta(minutes=5)).isoformat()
    past = (timezone.now() - timedelta(minutes=5)).isoformat()
    assert ids(updated_after=future) == set()
    assert {str(open_one.pk), str(resolved.pk)} <= ids(updated_after=past)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ("status=closed", "status"),
        ("channel=not-a-uuid", "channel"),
        ("assignee=someone", "assignee"),
        ("updated_after=yesterday", "updated_after"),
        ("updated_after=2025-13-01T00:00:00Z", "updated_after"),
        (f"q={'x' * 201}", "q"),
    ],
)
def test_invalid_filters_are_400_naming_the_parameter(tenant_a, params, field) -> None:
    response = tenant_a.client().get(f"{URL}?{params}")
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert field in error["details"]


def test_updated_after_accepts_an_encoded_offset(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
    value = quote((timezone.now() - timedelta(hours=1)).isoformat())
    assert str(conversation.pk) in _ids(tenant_a.client().get(f"{URL}?updated_after={value}"))


def test_cursor_pagination(tenant_a) -> None:
    with tenant_a.schema():
        created = {str(ConversationFactory.create().pk) for _ in range(5)}
    client = tenant_a.client()
    seen: list[str] = []
    page = client.get(URL, {"page_size": 2}).json()
    while True:
        assert set(page) == {"results", "next"}
        seen += [item["id"] for item in page["results"]]
        if not page["next"]:
            break
        page = client.get(page["next"]).json()
    assert len(seen) == len(set(seen))
    assert created <= set(seen)


@pytest.mark.parametrize(
    ("params", "selected"),
    [
        ({}, {}),
        ({"status": "open"}, {"status": "open"}),
        ({"status": "open", "label": "vip"}, {"status": "open", "label": "vip"}),
        ({"assignee": "none", "q": "parcel"}, {"unassigned": True, "q": "parcel"}),
        (
            {"channel": "channel", "updated_after": "past"},
            {"channel_id": "channel", "updated_after": "past"},
        ),
        ({"assignee": "operator", "label": "vip"}, {"assignee_id": "operator", "label": "vip"}),
        ({"assignee": "operator", "q": "parcel"}, {"assignee_id": "operator", "q": "parcel"}),
    ],
)
def test_every_filter_pages_through_what_the_orm_lists(tenant_a, params, selected) -> None:
    """Each combination of filters has its own compiled query: paged one by one through `next`,
    each must list exactly what the ORM lists with the same filters (`selected`), in its order,
    ties at one instant included."""
    now = timezone.now()
    with tenant_a.schema():
        operator = OperatorFactory.create()
        conversations = [
            ConversationFactory.create(labels=["vip"] if index % 2 else []) for index in range(7)
        ]
        for index, conversation in enumerate(conversations):
            _inbound(conversation, "Where is my parcel?" if index % 3 else "Hello")
        channel_id = conversations[0].channel_id
        Conversation.objects.filter(pk__in=[c.pk for c in conversations[:4]]).update(
            last_activity_at=now - timedelta(minutes=1), channel_id=channel_id
        )
        Conversation.objects.filter(pk__in=[c.pk for c in conversations[3:6]]).update(
            assignee=operator
        )
        Conversation.objects.filter(pk=conversations[5].pk).update(status="resolved")
        values: dict[Any, Any] = {
            "channel": channel_id,
            "operator": operator.pk,
            "past": now - timedelta(hours=1),
        }
        key = ApiKey.objects.get(prefix=tenant_a.api_key.split("_")[1])
        listed = conversation_list_by_activity(
            reader=Reader(api_key_id=key.pk),
            **{name: values.get(value, value) for name, value in selected.items()},
        )
        expected = [
            str(pk)
            for pk in listed.order_by(F("activity_at").desc(), "-id").values_list("pk", flat=True)
        ]
    values["past"] = values["past"].isoformat()
    params = {name: str(values.get(value, value)) for name, value in params.items()}
    assert len(expected) >= 2
    client = tenant_a.client()
    page = client.get(URL, {**params, "page_size": 1}).json()
    seen = [item["id"] for item in page["results"]]
    while page["next"]:
        page = client.get(page["next"]).json()
        seen += [item["id"] for item in page["results"]]
    assert seen == expected


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64!",
        base64.b64encode(b"p=yesterday").decode(),
        base64.b64encode(b"p=2026-11-23T10:00:00%2B00:00").decode(),  # no id
        base64.b64encode(b"p=2026-11-23T10:00:00+" + SOME_ID).decode(),  # naive
        base64.b64encode(b"r=1&p=2026-11-23T10:00:00%2B00:00+" + SOME_ID).decode(),  # backwards
    ],
)
def test_a_cursor_that_does_not_decode_is_404(tenant_a, cursor) -> None:
    response = tenant_a.client().get(URL, {"cursor": cursor})
    assert response.status_code == 404
    assert error_of(response)["message"] == "Invalid cursor"


def test_a_cursor_carries_a_position_only_another_tenant_lists_its_own(tenant_a, tenant_b) -> None:
    with tenant_a.schema():
        in_a = {str(ConversationFactory.create().pk) for _ in range(3)}
    with tenant_b.schema():
        in_b = {str(ConversationFactory.create().pk) for _ in range(2)}
    first = tenant_a.client().get(URL, {"page_size": 1}).json()
    cursor = first["next"].split("cursor=")[1].split("&")[0]
    # Tenant b's conversations were made after tenant a's: after a's position, none of b's.
    assert _ids(tenant_b.client().get(URL, {"cursor": unquote(cursor)})) == []
    assert set(_ids(tenant_b.client().get(URL))) == in_b
    assert set(_ids(tenant_a.client().get(URL, {"cursor": unquote(cursor)}))) < in_a


def test_list_runs_a_constant_number_of_queries(tenant_a) -> None:
    client = tenant_a.client()
    with tenant_a.schema():
        operator = OperatorFactory.create()

    def make() -> None:
        conversation = ConversationFactory.create(assignee=operator)
        _inbound(conversation)
        message_send(
            conversation=conversation,
            content={"type": "text", "text": "from a person"},
            sender_type="operator",
            sender_operator=operator,
        )

    def queries() -> int:
        # Warm: the first request of a key also records when it was last used.
        client.get(URL)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(URL, {"page_size": 100})
        assert response.status_code == 200
        return len(captured)

    with tenant_a.schema():
        make()
    one = queries()
    with tenant_a.schema():
        for _ in range(29):
            make()
    assert len(client.get(URL, {"page_size": 100}).json()["results"]) >= 30
    assert queries() == one


def test_a_list_page_reads_files_only_when_a_last_message_names_one(tenant_a) -> None:
    from conversations.models import Attachment
    from conversations.services.attachments import message_send_with_attachment

    client = tenant_a.client()
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        _inbound(conversation)

    def file_reads() -> tuple[int, list[dict[str, Any]]]:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(URL)
        assert response.status_code == 200
        table = Attachment._meta.db_table
        return sum(table in query["sql"] for query in captured), response.json()["results"]

    client.get(URL)
    reads, listed = file_reads()
    assert (reads, listed[0]["last_message"]["attachments"]) == (0, [])
    with tenant_a.schema():
        label = Attachment.objects.create(
            conversation=conversation, file="label.pdf", filename="label.pdf", size=3
        )
        message_send_with_attachment(
            conversation=conversation,
            content={"type": "document", "attachment_id": str(label.pk)},
            sender_type="operator",
            sender_operator=OperatorFactory.create(),
        )
    reads, listed = file_reads()
    assert reads == 1
    assert [item["filename"] for item in listed[0]["last_message"]["attachments"]] == ["label.pdf"]


def test_retrieve_and_patch(tenant_a) -> None:
    client = tenant_a.client()
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        operator = OperatorFactory.create()
    url = f"{URL}{conversation.pk}/"
    assert client.get(url).json()["status"] == "open"
    snooze_until = (timezone.now() + timedelta(hours=2)).isoformat()
    response = client.patch(
        url,
        {
            "status": "snoozed",
            "snoozed_until": snooze_until,
            "priority": 3,
            "labels": ["billing", " vip ", "billing"],
            "assignee": str(operator.pk),
            "ai_active": False,
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "snoozed"
    assert body["snoozed_until"] is not None
    assert body["priority"] == 3
    assert body["labels"] == ["billing", "vip"]
    assert body["assignee"] == str(operator.pk)
    assert body["ai_active"] is False
    assert "unread_count" in body
    unassigned = client.patch(url, {"assignee": None, "status": "open"}, format="json").json()
    assert unassigned["assignee"] is None
    assert unassigned["snoozed_until"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "snoozed"}, "snoozed_until"),
        ({"status": "closed"}, "status"),
        ({"priority": 9}, "priority"),
        ({"labels": "vip"}, "labels"),
        ({"assignee": str(uuid.uuid4())}, "assignee"),
        ({"ai_active": "perhaps"}, "ai_active"),
        ({"contact": str(uuid.uuid4())}, "contact"),
    ],
)
def test_patch_bad_input_is_400_naming_the_field(tenant_a, body, field) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
    response = tenant_a.client().patch(f"{URL}{conversation.pk}/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in error_of(response)["details"]


def test_mute_assign_and_status_actions(tenant_a) -> None:
    client = tenant_a.client()
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        operator = OperatorFactory.create()
    url = f"{URL}{conversation.pk}/"
    muted = client.post(f"{url}mute/", {"muted": True}, format="json")
    assert muted.status_code == 200
    assert muted.json()["muted"] is True
    assert client.post(f"{url}mute/", {"muted": False}, format="json").json()["muted"] is False
    assert "muted" in error_of(client.post(f"{url}mute/", {}, format="json"))["details"]

    assigned = client.post(f"{url}assign/", {"operator": str(operator.pk)}, format="json")
    assert assigned.status_code == 200
    assert assigned.json()["assignee"] == str(operator.pk)
    with tenant_a.schema():
        assert Participant.objects.filter(conversation=conversation, operator=operator).exists()
    nobody = client.post(f"{url}assign/", {"operator": str(uuid.uuid4())}, format="json")
    assert nobody.status_code == 400
    assert "operator" in error_of(nobody)["details"]
    assert (
        client.post(f"{url}assign/", {"operator": None}, format="json").json()["assignee"] is None
    )

    resolved = client.post(f"{url}status/", {"status": "resolved"}, format="json")
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "resolved"
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    refused = client.post(
        f"{url}status/", {"status": "snoozed", "snoozed_until": past}, format="json"
    )
    assert refused.status_code == 400
    assert error_of(refused)["code"] == "invalid_status"
    assert "snoozed_until" in error_of(refused)["details"]
    unknown = client.post(f"{url}status/", {"status": "resolved", "why": "x"}, format="json")
    assert "why" in error_of(unknown)["details"]
    negative = client.post(f"{url}read/", {"seq": -1}, format="json")
    assert "seq" in error_of(negative)["details"]


def test_participants_and_the_group_limit(tenant_a) -> None:
    tenant = tenant_a.tenant
    tenant.max_group_participants = 3
    tenant.save()
    client = tenant_a.client()
    with tenant_a.schema():
        group = ConversationFactory.create(type=Conversation.Type.GROUP)
        first, second = ContactFactory.create(), ContactFactory.create()
        operator = OperatorFactory.create()
    url = f"{URL}{group.pk}/participants/"
    added = client.post(url, {"contact": str(first.pk)}, format="json")
    assert added.status_code == 201, added.content
    assert added.json()["role"] == "member"
    assert added.json()["contact"]["id"] == str(first.pk)
    again = client.post(url, {"contact": str(first.pk)}, format="json")
    assert again.status_code == 200
    assert again.json()["id"] == added.json()["id"]
    agent = client.post(url, {"operator": str(operator.pk)}, format="json")
    assert agent.status_code == 201
    assert agent.json()["role"] == "agent"
    assert agent.json()["operator"]["id"] == str(operator.pk)
    # Reading does not make an API key a member, so it never counts against the limit.
    client.post(f"{URL}{group.pk}/read/", {}, format="json")
    full = client.post(url, {"contact": str(second.pk), "role": "member"}, format="json")
    assert full.status_code == 409
    assert error_of(full)["code"] == "group_full"
    listed = client.get(url).json()
    assert len(listed["results"]) == 3
    assert listed["results"][0]["role"] == "customer"
    for body, field in (
        ({}, "contact"),
        ({"contact": str(first.pk), "operator": str(operator.pk)}, "operator"),
        ({"contact": str(uuid.uuid4())}, "contact"),
        ({"contact": str(first.pk), "role": "king"}, "role"),
    ):
        response = client.post(url, body, format="json")
        assert response.status_code == 400
        assert field in error_of(response)["details"]


def test_another_tenants_conversation_is_not_found(tenant_a, tenant_b) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        _inbound(conversation, "confidential words")
    b = tenant_b.client()
    with tenant_b.schema():
        b_contact = ContactFactory.create()
        b_operator = OperatorFactory.create()
    listed = _ids(b.get(URL))
    assert str(conversation.pk) not in listed
    assert _ids(b.get(URL, {"q": "confidential"})) == []
    missing = b.get(f"{URL}{uuid.uuid4()}/")
    assert missing.status_code == 404
    url = f"{URL}{conversation.pk}/"
    for response in (
        b.get(url),
        b.patch(url, {"priority": 4}, format="json"),
        b.post(f"{url}read/", {}, format="json"),
        b.post(f"{url}mute/", {"muted": True}, format="json"),
        b.post(f"{url}assign/", {"operator": str(b_operator.pk)}, format="json"),
        b.post(f"{url}status/", {"status": "resolved"}, format="json"),
        b.get(f"{url}participants/"),
        b.post(f"{url}participants/", {"contact": str(b_contact.pk)}, format="json"),
    ):
        assert response.status_code == 404
        assert response.json() == missing.json()
    with tenant_a.schema():
        stored = Conversation.objects.get(pk=conversation.pk)
        assert (stored.status, stored.priority, stored.assignee_id) == ("open", 0, None)
        assert Participant.objects.filter(conversation=conversation).count() == 1


def test_an_operators_unread_count_follows_its_own_position_and_skips_deleted_messages(
    tenant_a,
) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        first, second, third = (_inbound(conversation, text) for text in ("a", "b", "c"))
        _outbound(conversation, "answer")
        me, colleague = OperatorFactory.create(), OperatorFactory.create()
        participant_mark_read(conversation=conversation, seq=first.seq, operator=me)
        participant_mark_read(conversation=conversation, seq=third.seq, operator=colleague)
        Message.objects.filter(pk=second.pk).update(deleted_at=timezone.now())

        def unread(reader: Reader) -> int:
            listed = conversation_list_by_activity(reader=reader).get(pk=conversation.pk)
            return int(listed.unread_count)  # type: ignore[attr-defined]

        # After my position: b (deleted) and c; the answer is outbound.
        assert unread(Reader(operator_id=me.pk)) == 1
        assert unread(Reader(operator_id=colleague.pk)) == 0
        # A reader with no position has every live inbound message waiting.
        assert unread(Reader(operator_id=OperatorFactory.create().pk)) == 2
        assert unread(Reader(api_key_id=uuid.uuid4())) == 2
