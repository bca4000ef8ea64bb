"""`/api/v1/canned-responses/`: CRUD, validation, duplicates, and one tenant's key never reaching
another tenant's saved replies."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from inbox.models import CannedResponse
from tests.factories import UserFactory
from tests.support import error_of

URL = "/api/v1/canned-responses/"


def test_create_list_change_and_delete(tenant_a) -> None:
    client = tenant_a.client()
    created = client.post(URL, {"shortcut": "hello", "text": "Hi {{contact.name}}!"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "shortcut", "text", "created_at", "updated_at"}
    client.post(URL, {"shortcut": "bye", "text": "Have a nice day."}, format="json")

    listed = client.get(URL).json()
    assert [item["shortcut"] for item in listed["results"]] == ["bye", "hello"]
    assert listed["next"] is None

    detail = f"{URL}{body['id']}/"
    changed = client.patch(detail, {"text": "Hello there!"}, format="json")
    assert changed.status_code == 200
    assert (changed.json()["shortcut"], changed.json()["text"]) == ("hello", "Hello there!")
    assert client.get(detail).json()["text"] == "Hello there!"

    assert client.delete(detail).status_code == 204
    assert client.get(detail).status_code == 404
    with tenant_a.schema():
        assert list(CannedResponse.objects.values_list("shortcut", flat=True)) == ["bye"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"shortcut": "Hello", "text": "x"}, "shortcut"),
        ({"shortcut": "/hello", "text": "x"}, "shortcut"),
        ({"shortcut": "two words", "text": "x"}, "shortcut"),
        ({"shortcut": "a" * 51, "text": "x"}, "shortcut"),
        ({"shortcut": "ok", "text": ""}, "text"),
        ({"shortcut": "ok", "text": "x" * 4097}, "text"),
        ({"shortcut": "ok"}, "text"),
        ({"shortcut": "ok", "text": "x", "title": "extra"}, "title"),
    ],
)
def test_invalid_input_names_the_field_and_stores_nothing(tenant_a, data, field) -> None:
    response = tenant_a.client().post(URL, data, format="json")
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert field in error["details"]
    with tenant_a.schema():
        assert not CannedResponse.objects.exists()


def test_a_taken_shortcut_is_a_conflict(tenant_a) -> None:
    client = tenant_a.client()
    first = client.post(URL, {"shortcut": "refund", "text": "One"}, format="json").json()
    again = client.post(URL, {"shortcut": "refund", "text": "Two"}, format="json")
    assert again.status_code == 409
    assert error_of(again)["code"] == "duplicate_shortcut"
    other = client.post(URL, {"shortcut": "other", "text": "Three"}, format="json").json()
    renamed = client.patch(f"{URL}{other['id']}/", {"shortcut": "refund"}, format="json")
    assert renamed.status_code == 409
    with tenant_a.schema():
        assert CannedResponse.objects.get(pk=first["id"]).text == "One"
        assert CannedResponse.objects.get(pk=other["id"]).shortcut == "other"


def test_another_tenants_key_cannot_see_or_touch_them(tenant_a, tenant_b) -> None:
    created = tenant_a.client().post(URL, {"shortcut": "a-only", "text": "A"}, format="json")
    detail = f"{URL}{created.json()['id']}/"
    other = tenant_b.client()
    assert other.get(URL).json()["results"] == []
    for response in (
        other.get(detail),
        other.patch(detail, {"text": "hacked"}, format="json"),
        other.delete(detail),
    ):
        assert response.status_code == 404
        assert error_of(response)["code"] == "not_found"
    # The same shortcut is free in another tenant.
    assert other.post(URL, {"shortcut": "a-only", "text": "B"}, format="json").status_code == 201
    with tenant_a.schema():
        assert CannedResponse.objects.get(shortcut="a-only").text == "A"


def test_unknown_ids_and_no_key(tenant_a) -> None:
    assert tenant_a.client().get(f"{URL}{uuid.uuid4()}/").status_code == 404
    assert Client().get(URL).status_code == 401


def test_the_admin_manages_them(tenant_a) -> None:
    client = Client()
    with tenant_a.schema():
        client.force_login(UserFactory.create(is_superuser=True))
    base = f"/t/{tenant_a.slug}/admin/inbox/cannedresponse/"
    added = client.post(f"{base}add/", {"shortcut": "hours", "text": "We are open 9-17."})
    assert added.status_code == 302
    refused = client.post(f"{base}add/", {"shortcut": "Bad Shortcut", "text": "x"})
    assert refused.status_code == 200
    assert "lowercase letters" in refused.content.decode()
    with tenant_a.schema():
        assert list(CannedResponse.objects.values_list("shortcut", flat=True)) == ["hours"]
    listing = client.get(base)
    assert "/hours" in listing.content.decode()
