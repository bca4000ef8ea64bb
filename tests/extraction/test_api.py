"""`conversations/{id}/extract/`, `extractions/` (filters, CSV and JSON-lines exports) and
`extraction-fields/`, through the API with each tenant's key."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from extraction.models import Extraction, ExtractionField
from tests.extraction.conftest import DEFAULT_FIELDS, conversation_with
from tests.factories import ChannelFactory, ConversationFactory
from tests.support import error_of

LIST = "/api/v1/extractions/"
FIELDS = "/api/v1/extraction-fields/"


def _extract_url(conversation_id) -> str:
    return f"/api/v1/conversations/{conversation_id}/extract/"


def _streamed(response) -> bytes:
    assert response.streaming
    return b"".join(response.streaming_content)


def test_extract_now_returns_the_new_version(tenant_a) -> None:
    with tenant_a.schema():
        conversation = conversation_with("I'm Lena Fischer, lena@example.org")
    client = tenant_a.client()
    response = client.post(_extract_url(conversation.pk), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["data"] == {"name": "Lena Fischer", "email": "lena@example.org"}
    assert body["version"] == 1
    assert body["conversation"] == str(conversation.pk)
    assert body["channel"] == str(conversation.channel_id)
    assert body["contact"] == str(conversation.contact_id)
    assert body["source"] == "rules"
    assert body["trigger"] == "manual"
    assert body["missing"] == []
    assert body["changes"]["added"] == body["data"]
    # Manual runs do not wait for new messages.
    again = client.post(_extract_url(conversation.pk), format="json")
    assert again.json()["version"] == 2
    assert again.json()["changes"] == {"added": {}, "changed": {}, "removed": {}}


def test_extract_now_refuses_bad_requests_and_changes_nothing(tenant_a) -> None:
    with tenant_a.schema():
        empty = ConversationFactory.create()
        conversation = conversation_with("hi")
    client = tenant_a.client()
    unknown_field = client.post(_extract_url(conversation.pk), {"now": True}, format="json")
    assert unknown_field.status_code == 400
    assert error_of(unknown_field)["code"] == "validation_error"
    nothing = client.post(_extract_url(empty.pk), format="json")
    assert nothing.status_code == 409
    assert error_of(nothing)["code"] == "nothing_to_extract"
    missing = client.post(_extract_url(uuid.uuid4()), format="json")
    assert missing.status_code == 404
    assert client.post("/api/v1/conversations/not-a-uuid/extract/").status_code == 404
    with tenant_a.schema():
        ExtractionField.objects.all().delete()
    no_fields = client.post(_extract_url(conversation.pk), format="json")
    assert error_of(no_fields)["code"] == "no_extraction_fields"
    with tenant_a.schema():
        assert not Extraction.objects.exists()


def test_extract_now_without_credits_is_402(tenant_a, settings) -> None:
    settings.HUB_CREDITS_PER_EXTRACTION = 1_000_000
    with tenant_a.schema():
        conversation = conversation_with("hi")
    response = tenant_a.client().post(_extract_url(conversation.pk), format="json")
    assert response.status_code == 402
    assert error_of(response)["code"] == "insufficient_credits"


def test_extract_now_when_the_model_fails_is_503(tenant_a, openai_fake) -> None:
    openai_fake.structured = "[1, 2"
    with tenant_a.schema():
        conversation = conversation_with("hi")
    response = tenant_a.client().post(_extract_url(conversation.pk), format="json")
    assert response.status_code == 503
    error = error_of(response)
    assert (error["code"], error["details"]) == ("extraction_failed", {"reason": "invalid_output"})


def test_another_tenants_conversations_and_leads_are_not_found(tenant_a, tenant_b) -> None:
    with tenant_a.schema():
        conversation = conversation_with("I'm Secret Sam, sam@example.com")
    a = tenant_a.client()
    assert a.post(_extract_url(conversation.pk), format="json").status_code == 201
    b = tenant_b.client()
    foreign = b.post(_extract_url(conversation.pk), format="json")
    unknown = b.post(_extract_url(uuid.uuid4()), format="json")
    assert foreign.status_code == 404
    assert foreign.json() == unknown.json()
    assert b.get(LIST).json()["results"] == []
    assert b.get(LIST, {"conversation": str(conversation.pk)}).json()["results"] == []
    assert b.get(LIST, {"q": "Secret"}).json()["results"] == []
    assert b"Secret" not in _streamed(b.get(LIST, {"format": "csv"}))
    assert _streamed(b.get(LIST, {"format": "jsonl"})) == b""
    with tenant_a.schema():
        assert Extraction.objects.count() == 1


@pytest.fixture(params=[False, True], ids=["plain", "encrypted"])
def leads_encrypted(request, tenant_a) -> bool:
    """Tenant A with and without message encryption: its leads are then stored encrypted, and
    every filter and export must answer the same (tests/extraction/test_encrypted.py)."""
    tenant = tenant_a.tenant
    tenant.message_encryption = request.param
    tenant.save()
    return request.param


def _seed_versions(tenant) -> dict[str, Any]:
    """Three versions over two channels, created a day apart."""
    with tenant.schema():
        web = ChannelFactory.create(name="Web")
        sms = ChannelFactory.create(name="SMS", kind="sms", config={})
        first = conversation_with("I'm Ann Bell, ann@example.com")
        first.channel = web
        first.save()
        second = conversation_with("call +44 7911 123456")
        second.channel = sms
        second.save()
        now = timezone.now()
        rows = []
        for days, conversation, data in (
            (3, first, {"name": "Ann Bell", "email": "ann@example.com"}),
            (2, first, {"name": "Ann Bell", "email": '=HYPERLINK("http://evil")'}),
            (1, second, {"phone": "+447911123456", "budget": -200}),
        ):
            extraction = Extraction.objects.create(
                conversation=conversation,
                contact=conversation.contact,
                version=Extraction.objects.filter(conversation=conversation).count() + 1,
                data=data,
                confirmed=sorted(data),
                dropped=[{"field": "intent", "value": "x", "reason": "not one of …"}],
                source="llm",
                trigger="idle",
                through_seq=1,
            )
            Extraction.objects.filter(pk=extraction.pk).update(
                created_at=now - timedelta(days=days)
            )
            rows.append(extraction)
    return {"web": web, "sms": sms, "first": first, "second": second, "rows": rows, "now": now}


def test_list_filters(tenant_a, leads_encrypted) -> None:
    seeded = _seed_versions(tenant_a)
    rows, now = seeded["rows"], seeded["now"]
    client = tenant_a.client()

    def ids(**params) -> list[str]:
        response = client.get(LIST, params)
        assert response.status_code == 200, response.content
        return [item["id"] for item in response.json()["results"]]

    newest_first = [str(row.pk) for row in reversed(rows)]
    assert ids() == newest_first
    assert ids(channel=str(seeded["sms"].pk)) == [str(rows[2].pk)]
    assert ids(conversation=str(seeded["first"].pk)) == newest_first[1:]
    assert ids(field="phone") == [str(rows[2].pk)]
    assert ids(field="company") == []
    assert ids(q="ann@EXAMPLE") == [str(rows[0].pk)]
    assert ids(q="bell") == newest_first[1:]
    assert ids(q="-20") == [str(rows[2].pk)]
    assert ids(q="bell", channel=str(seeded["web"].pk), page_size=1) == newest_first[1:2]
    assert ids(field="email", q="hyperlink") == [str(rows[1].pk)]
    # Only values are searched, not the field names every row has.
    assert ids(q="email") == []
    assert ids(q="100%") == []
    window = {
        "created_after": (now - timedelta(days=2, hours=1)).isoformat(),
        "created_before": (now - timedelta(hours=12)).isoformat(),
    }
    assert ids(**window) == newest_first[:2]
    assert ids(page_size=1) == newest_first[:1]


def test_list_refuses_bad_filters(tenant_a) -> None:
    client = tenant_a.client()
    for params, field in (
        ({"created_after": "yesterday"}, "created_after"),
        ({"channel": "web"}, "channel"),
        ({"format": "xml"}, "format"),
        (
            {"created_after": "2025-02-01T00:00:00Z", "created_before": "2025-01-01T00:00:00Z"},
            "created_before",
        ),
    ):
        response = client.get(LIST, params)
        assert response.status_code == 400, params
        assert field in error_of(response)["details"]


def test_csv_export_has_a_column_per_field_and_defuses_formulas(tenant_a, leads_encrypted) -> None:
    seeded = _seed_versions(tenant_a)
    response = tenant_a.client().get(LIST, {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="extractions-')
    rows = list(csv.DictReader(io.StringIO(_streamed(response).decode())))
    assert list(rows[0]) == [
        "id",
        "created_at",
        "conversation",
        "contact",
        "channel",
        "version",
        "source",
        "trigger",
        *DEFAULT_FIELDS,
        "confirmed",
        "dropped",
    ]
    assert [row["id"] for row in rows] == [str(r.pk) for r in reversed(seeded["rows"])]
    newest, middle, oldest = rows
    assert (newest["phone"], newest["budget"], newest["email"]) == ("+447911123456", "-200", "")
    assert newest["channel"] == str(seeded["sms"].pk)
    assert middle["email"] == '\'=HYPERLINK("http://evil")'
    assert (oldest["name"], oldest["confirmed"], oldest["dropped"]) == (
        "Ann Bell",
        "email;name",
        "intent",
    )


def test_jsonl_export_has_the_list_shape(tenant_a, leads_encrypted) -> None:
    _seed_versions(tenant_a)
    client = tenant_a.client()
    listed = client.get(LIST).json()["results"]
    response = client.get(LIST, {"format": "jsonl", "field": "name"})
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    lines = _streamed(response).decode().splitlines()
    assert [json.loads(line) for line in lines] == listed[1:]


def test_fields_crud(tenant_a, tenant_b) -> None:
    client = tenant_a.client()
    listed = client.get(FIELDS).json()["results"]
    assert [field["name"] for field in listed] == DEFAULT_FIELDS
    created = client.post(
        FIELDS,
        {"name": "plan", "type": "enum", "enum_values": ["basic", "pro"], "required": True},
        format="json",
    )
    assert created.status_code == 201, created.content
    field = created.json()
    assert (field["type"], field["enum_values"], field["required"]) == (
        "enum",
        ["basic", "pro"],
        True,
    )
    url = f"{FIELDS}{field['id']}/"
    assert client.get(url).json()["name"] == "plan"
    changed = client.patch(url, {"description": "Their plan", "position": 1}, format="json")
    assert changed.status_code == 200
    assert changed.json()["description"] == "Their plan"
    # Another tenant cannot see, change or delete it.
    b = tenant_b.client()
    assert b.get(url).status_code == 404
    assert b.patch(url, {"description": "x"}, format="json").status_code == 404
    assert b.delete(url).status_code == 404
    assert "plan" not in [f["name"] for f in b.get(FIELDS).json()["results"]]
    # The new required field shows as missing where it was not found.
    with tenant_a.schema():
        conversation = conversation_with("I'm Ida")
    extracted = client.post(_extract_url(conversation.pk), format="json").json()
    assert extracted["missing"] == ["plan"]
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404


def test_fields_refuse_invalid_schemas(tenant_a) -> None:
    client = tenant_a.client()
    cases = [
        ({"name": "tier", "type": "enum"}, "enum_values"),
        ({"name": "tier", "type": "enum", "enum_values": ["a", "A"]}, "enum_values"),
        ({"name": "size", "type": "number", "enum_values": ["1"]}, "enum_values"),
        ({"name": "Bad Name", "type": "string"}, "name"),
        ({"name": "size", "type": "colour"}, "type"),
        ({"name": "size", "type": "string", "extra": 1}, "extra"),
    ]
    for body, field in cases:
        response = client.post(FIELDS, body, format="json")
        assert response.status_code == 400, body
        assert field in error_of(response)["details"], (body, error_of(response))
    taken = client.post(FIELDS, {"name": "email", "type": "email"}, format="json")
    assert taken.status_code == 409
    assert error_of(taken)["code"] == "field_exists"
    with tenant_a.schema():
        email_id = ExtractionField.objects.get(name="email").pk
    renamed = client.patch(f"{FIELDS}{email_id}/", {"name": "phone"}, format="json")
    assert error_of(renamed)["code"] == "field_exists"
    for index in range(50 - len(DEFAULT_FIELDS)):
        created = client.post(FIELDS, {"name": f"f{index}", "type": "string"}, format="json")
        assert created.status_code == 201
    too_many = client.post(FIELDS, {"name": "one_more", "type": "string"}, format="json")
    assert too_many.status_code == 400
    assert error_of(too_many)["code"] == "too_many_fields"
    with tenant_a.schema():
        assert ExtractionField.objects.count() == 50
