"""Leads of a tenant that encrypts message bodies: `data`, `dropped` and `changes` are
ciphertext in the database, while the list's filters (`field`, `q`) and the exports answer
exactly as for a tenant that does not encrypt."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.db import connection

from extraction.models import Extraction
from retention.encryption import TOKEN
from tests.extraction.conftest import conversation_with
from tests.extraction.test_api import LIST, _seed_versions, _streamed


def _encrypt(info, on: bool = True) -> None:
    tenant = info.tenant
    tenant.message_encryption = on
    tenant.save()


def _raw(pk) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT data::text, dropped::text, changes::text, found_fields "
            "FROM extraction_extraction WHERE id = %s",
            [pk],
        )
        data, dropped, changes, found = cursor.fetchone()
    return {"data": data, "dropped": dropped, "changes": changes, "found_fields": found}


def _version(conversation, data: dict[str, Any], version: int = 1) -> Extraction:
    return Extraction.objects.create(
        conversation=conversation,
        contact=conversation.contact,
        version=version,
        data=data,
        dropped=[{"field": "phone", "value": "call me maybe", "reason": "not a phone"}],
        changes={"added": data},
        source="rules",
        trigger="idle",
        through_seq=1,
    )


def test_leads_are_ciphertext_only_for_the_tenant_that_asks(tenant_a, tenant_b) -> None:
    _encrypt(tenant_a)
    lead = {"name": "Ann Bell", "email": "ann@example.com"}
    with tenant_a.schema():
        encrypted = _version(conversation_with("hi"), lead)
        raw = _raw(encrypted.pk)
        for column in ("data", "dropped", "changes"):
            stored = json.loads(raw[column])
            assert set(stored) == {"$enc"}, column
            assert TOKEN.match(stored["$enc"]), column
        assert not any(word in json.dumps(raw) for word in ("Ann", "ann@", "call me"))
        # The field names stay readable, for `?field=`.
        assert raw["found_fields"] == ["email", "name"]
        assert Extraction.objects.get(pk=encrypted.pk).data == lead
    with tenant_b.schema():
        plain = _version(conversation_with("hi"), lead)
        assert json.loads(_raw(plain.pk)["data"]) == lead


def test_filters_find_plain_and_encrypted_versions_alike(tenant_a) -> None:
    with tenant_a.schema():
        conversation = conversation_with("hi")
        before = _version(conversation, {"name": "Ann Bell", "budget": 1500})
    _encrypt(tenant_a)
    with tenant_a.schema():
        after = _version(conversation, {"name": "Ann Bell", "company": "Bell & Co"}, version=2)
        assert set(json.loads(_raw(after.pk)["data"])) == {"$enc"}
        assert "$enc" not in json.loads(_raw(before.pk)["data"])
    client = tenant_a.client()

    def ids(**params: str) -> list[str]:
        response = client.get(LIST, params)
        assert response.status_code == 200, response.content
        return [item["id"] for item in response.json()["results"]]

    both = [str(after.pk), str(before.pk)]
    assert ids(q="ann bell") == both
    assert ids(field="name") == both
    assert ids(field="company") == [str(after.pk)]
    assert ids(q="1500") == [str(before.pk)]
    assert ids(q="& co") == [str(after.pk)]
    # The stored tokens are never searched.
    assert ids(q="gAAAAA") == []
    assert ids(q="$enc") == []


def test_an_encrypting_tenant_lists_and_exports_what_a_plain_one_does(tenant_a, tenant_b) -> None:
    _encrypt(tenant_a)
    seeded = {info.slug: _seed_versions(info) for info in (tenant_a, tenant_b)}

    def answers(info, **params: str) -> list[object]:
        """What the list and the exports say, with each tenant's own ids left out."""
        client = info.client()
        listed = client.get(LIST, params).json()["results"]
        lines = _streamed(client.get(LIST, {**params, "format": "jsonl"})).decode().splitlines()
        rows = csv.DictReader(
            io.StringIO(_streamed(client.get(LIST, {**params, "format": "csv"})).decode())
        )
        return [
            [(item["version"], item["data"], item["dropped"], item["missing"]) for item in listed],
            [json.loads(line)["data"] for line in lines],
            [
                {k: v for k, v in row.items() if k not in {"id", "conversation", "contact"}}
                | {"channel": row["channel"] and "set", "created_at": ""}
                for row in rows
            ],
        ]

    for params in ({}, {"field": "email"}, {"q": "ann"}, {"q": "+44", "field": "phone"}):
        assert answers(tenant_a, **params) == answers(tenant_b, **params), params
        assert answers(tenant_a, **params)[0], params
    assert answers(tenant_a, q="nobody") == [[], [], []]
    # Neither tenant sees the other's leads.
    a_ids = {str(row.pk) for row in seeded[tenant_a.slug]["rows"]}
    listed_by_b = {item["id"] for item in tenant_b.client().get(LIST).json()["results"]}
    assert not a_ids & listed_by_b
