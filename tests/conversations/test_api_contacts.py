"""`contacts/`: create with identities, search, change, delete, merge and erase."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations.models import Contact, ContactIdentity, Conversation, Message
from conversations.services.messages import message_receive
from tests.factories import ContactFactory, ContactIdentityFactory, ConversationFactory
from tests.support import error_of

URL = "/api/v1/contacts/"


def _create(client: Any, **body: Any) -> Any:
    return client.post(URL, body, format="json")


def test_create_with_identities(tenant_a) -> None:
    response = _create(
        tenant_a.client(),
        name="Ann Lee",
        email="ann@example.com",
        phone="+49 151 (1234) 5678",
        avatar_url="https://cdn.example.com/ann.png",
        language="pt-BR",
        attributes={"tier": "gold", "orders": 3},
        identities=[
            {"channel_kind": "whatsapp", "external_id": "4915112345678"},
            {"channel_kind": "email", "external_id": "ann@example.com"},
        ],
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "Ann Lee"
    assert body["phone"] == "+4915112345678"
    assert body["language"] == "pt-BR"
    assert body["attributes"] == {"tier": "gold", "orders": 3}
    assert body["erased_at"] is None
    assert sorted(body["identities"], key=lambda i: i["channel_kind"]) == [
        {"channel_kind": "email", "external_id": "ann@example.com"},
        {"channel_kind": "whatsapp", "external_id": "4915112345678"},
    ]
    assert tenant_a.client().get(f"{URL}{body['id']}/").json() == body


def test_an_identity_is_unique_per_tenant(tenant_a, tenant_b) -> None:
    identity = {"channel_kind": "telegram", "external_id": "111"}
    assert _create(tenant_a.client(), name="First", identities=[identity]).status_code == 201
    taken = _create(tenant_a.client(), name="Second", identities=[identity])
    assert taken.status_code == 409
    assert error_of(taken)["code"] == "identity_taken"
    with tenant_a.schema():
        assert not Contact.objects.filter(name="Second").exists()
    # Another tenant's contacts are another world.
    assert _create(tenant_b.client(), name="Elsewhere", identities=[identity]).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"phone": "call me maybe"}, "phone"),
        ({"phone": "0151 1234"}, "phone"),
        ({"avatar_url": "javascript:alert(1)"}, "avatar_url"),
        ({"language": "english please"}, "language"),
        ({"attributes": ["a", "list"]}, "attributes"),
        ({"attributes": {"blob": "x" * 20000}}, "attributes"),
        ({"name": "x" * 201}, "name"),
        ({"colour": "red"}, "colour"),
        ({"identities": [{"channel_kind": "fax", "external_id": "1"}]}, "identities"),
        ({"identities": [{"channel_kind": "sms", "external_id": "1", "x": 1}]}, "identities"),
        (
            {"identities": [{"channel_kind": "sms", "external_id": "1"}] * 2},
            "identities",
        ),
    ],
)
def test_invalid_input_is_400_naming_the_field(tenant_a, body, field) -> None:
    response = _create(tenant_a.client(), **body)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert field in error["details"]


def test_nested_unknown_field_is_named(tenant_a) -> None:
    response = _create(
        tenant_a.client(), identities=[{"channel_kind": "sms", "external_id": "1", "colour": 1}]
    )
    assert response.status_code == 400
    assert "'colour': ['Unknown field.']" in str(error_of(response)["details"]["identities"])


def test_search_by_name_email_or_phone(tenant_a) -> None:
    client = tenant_a.client()
    ann = _create(client, name="Ann Lee", email="ann@shop.example", phone="+4915112345678")
    bob = _create(client, name="Bob Stone", email="bob@other.example", phone="+14155550100")

    def found(q: str) -> set[str]:
        response = client.get(URL, {"q": q})
        assert response.status_code == 200
        return {item["id"] for item in response.json()["results"]}

    ann_id, bob_id = ann.json()["id"], bob.json()["id"]
    assert found("ann l") == {ann_id}
    assert found("OTHER.example") == {bob_id}
    assert found("155 5501") == {bob_id}
    assert found("nobody") == set()
    assert {ann_id, bob_id} <= found("")


def test_list_is_paginated_with_a_constant_number_of_queries(tenant_a) -> None:
    client = tenant_a.client()

    def queries() -> int:
        # Warm: the first request of a key also records when it was last used.
        client.get(URL)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(URL, {"page_size": 100}).status_code == 200
        return len(captured)

    with tenant_a.schema():
        ContactIdentityFactory.create()
    one = queries()
    with tenant_a.schema():
        for _ in range(30):
            ContactIdentityFactory.create()
    assert queries() == one
    page = client.get(URL, {"page_size": 20}).json()
    assert len(page["results"]) == 20
    assert page["next"]


def test_patch_changes_fields_and_replaces_identities(tenant_a) -> None:
    client = tenant_a.client()
    contact = _create(
        client,
        name="Ann",
        identities=[
            {"channel_kind": "sms", "external_id": "+15550001"},
            {"channel_kind": "email", "external_id": "old@example.com"},
        ],
    ).json()
    url = f"{URL}{contact['id']}/"
    response = client.patch(
        url,
        {
            "name": "Ann Lee",
            "attributes": {"vip": True},
            "identities": [
                {"channel_kind": "sms", "external_id": "+15550001"},
                {"channel_kind": "telegram", "external_id": "777"},
            ],
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == "Ann Lee"
    assert body["attributes"] == {"vip": True}
    assert {(i["channel_kind"], i["external_id"]) for i in body["identities"]} == {
        ("sms", "+15550001"),
        ("telegram", "777"),
    }
    # Fields not sent stay; a taken identity changes nothing at all.
    _create(client, name="Other", identities=[{"channel_kind": "slack", "external_id": "U1"}])
    taken = client.patch(
        url,
        {"name": "Changed", "identities": [{"channel_kind": "slack", "external_id": "U1"}]},
        format="json",
    )
    assert taken.status_code == 409
    assert error_of(taken)["code"] == "identity_taken"
    after = client.get(url).json()
    assert after["name"] == "Ann Lee"
    assert len(after["identities"]) == 2
    bad = client.patch(url, {"nickname": "A"}, format="json")
    assert bad.status_code == 400
    assert "nickname" in error_of(bad)["details"]


def test_delete_without_conversations_and_409_with(tenant_a) -> None:
    client = tenant_a.client()
    lone = _create(client, name="Lone").json()["id"]
    assert client.delete(f"{URL}{lone}/").status_code == 204
    assert client.get(f"{URL}{lone}/").status_code == 404
    with tenant_a.schema():
        busy = ConversationFactory.create().contact
    response = client.delete(f"{URL}{busy.pk}/")
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "contact_in_use"
    assert "erase" in error["message"]


def test_merge_moves_everything_onto_the_target(tenant_a) -> None:
    client = tenant_a.client()
    target = _create(
        client,
        name="Ann",
        attributes={"tier": "gold"},
        identities=[{"channel_kind": "whatsapp", "external_id": "4915100000001"}],
    ).json()
    source = _create(
        client,
        email="ann@example.com",
        attributes={"tier": "silver", "city": "Lisbon"},
        identities=[{"channel_kind": "email", "external_id": "ann@example.com"}],
    ).json()
    with tenant_a.schema():
        conversation = ConversationFactory.create(contact=Contact.objects.get(pk=source["id"]))
    response = client.post(f"{URL}{target['id']}/merge/", {"source": source["id"]}, format="json")
    assert response.status_code == 200, response.content
    merged = response.json()
    assert merged["id"] == target["id"]
    assert merged["email"] == "ann@example.com"
    assert merged["attributes"] == {"tier": "gold", "city": "Lisbon"}
    assert {i["channel_kind"] for i in merged["identities"]} == {"whatsapp", "email"}
    assert client.get(f"{URL}{source['id']}/").status_code == 404
    with tenant_a.schema():
        assert str(Conversation.objects.get(pk=conversation.pk).contact_id) == target["id"]


def test_merge_refuses_itself_unknown_and_foreign_sources(tenant_a, tenant_b) -> None:
    client = tenant_a.client()
    contact = _create(client, name="Ann").json()["id"]
    itself = client.post(f"{URL}{contact}/merge/", {"source": contact}, format="json")
    assert itself.status_code == 400
    assert error_of(itself)["code"] == "invalid_merge"
    foreign = _create(tenant_b.client(), name="B's").json()["id"]
    unknown = client.post(f"{URL}{contact}/merge/", {"source": str(uuid.uuid4())}, format="json")
    other = client.post(f"{URL}{contact}/merge/", {"source": foreign}, format="json")
    assert unknown.status_code == other.status_code == 404
    assert unknown.json() == other.json()
    malformed = client.post(f"{URL}{contact}/merge/", {"source": "nope"}, format="json")
    assert malformed.status_code == 400
    assert "source" in error_of(malformed)["details"]
    with tenant_b.schema():
        assert Contact.objects.filter(pk=foreign).exists()


def test_erase_removes_personal_data_and_messages(tenant_a) -> None:
    client = tenant_a.client()
    contact = _create(
        client,
        name="Bob",
        phone="+15550001234",
        email="bob@example.com",
        attributes={"a": 1},
        identities=[{"channel_kind": "sms", "external_id": "+15550001234"}],
    ).json()
    with tenant_a.schema():
        stored = Contact.objects.get(pk=contact["id"])
        conversation = ConversationFactory.create(contact=stored)
        message_receive(
            conversation=conversation,
            contact=stored,
            content={"type": "text", "text": "my card is 4111"},
        )
    unknown_field = client.post(f"{URL}{contact['id']}/erase/", {"really": True}, format="json")
    assert unknown_field.status_code == 400
    response = client.post(f"{URL}{contact['id']}/erase/", format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["phone"], body["email"], body["attributes"]) == ("", "", "", {})
    assert body["identities"] == []
    assert body["erased_at"] is not None
    with tenant_a.schema():
        assert not Message.objects.filter(conversation=conversation, text__contains="4111").exists()
        assert not ContactIdentity.objects.filter(contact_id=contact["id"]).exists()


def test_another_tenants_contact_is_not_found(tenant_a, tenant_b) -> None:
    with tenant_a.schema():
        contact = ContactFactory.create(name="Secret Sam")
    b = tenant_b.client()
    assert str(contact.pk) not in {item["id"] for item in b.get(URL).json()["results"]}
    assert b.get(URL, {"q": "Secret Sam"}).json()["results"] == []
    own = _create(b, name="B's own").json()["id"]
    missing = b.get(f"{URL}{uuid.uuid4()}/")
    assert missing.status_code == 404
    url = f"{URL}{contact.pk}/"
    for response in (
        b.get(url),
        b.patch(url, {"name": "hijacked"}, format="json"),
        b.delete(url),
        b.post(f"{url}merge/", {"source": own}, format="json"),
        b.post(f"{url}erase/", format="json"),
    ):
        assert response.status_code == 404
        assert response.json() == missing.json()
    with tenant_a.schema():
        stored = Contact.objects.get(pk=contact.pk)
        assert stored.name == "Secret Sam"
        assert stored.erased_at is None
