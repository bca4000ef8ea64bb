"""API keys, the error shape, throttling and isolation between tenants."""

from __future__ import annotations

import time
import uuid

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import Agent
from hub.memo import CHECK_SECONDS, GENERATION_KEY
from hub.redis import get_redis
from tenants.models import ApiKey
from tenants.services import api_key_issue, api_key_revoke, tenant_suspend
from tests.support import error_of


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "not_authenticated"),
        ("Token abc", "authentication_failed"),
        ("Bearer", "authentication_failed"),
        ("Bearer not-a-key", "authentication_failed"),
        ("Bearer hub_AAAAAAAA_" + "x" * 43, "authentication_failed"),
    ],
)
def test_missing_malformed_or_unknown_key_is_401(tenant_a, header, code) -> None:
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/agents/")
    assert response.status_code == 401
    assert error_of(response)["code"] == code
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_revoked_key_is_401(tenant_a) -> None:
    issued = api_key_issue(tenant=tenant_a.tenant, name="temp")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw_key}")
    assert client.get("/api/v1/agents/").status_code == 200
    api_key_revoke(api_key=issued.api_key)
    response = client.get("/api/v1/agents/")
    assert response.status_code == 401
    assert "revoked" in error_of(response)["message"]


def test_remembered_keys_still_honour_revocation_and_suspension(tenant_a, settings) -> None:
    """Keys and tenants are memoised per process (hub/memo.py): a revocation or a suspension
    made in this process shows at once; one made in another process (its row changed, and the
    memo's generation bumped as its commit does) within about a second."""
    settings.HUB_TENANT_CACHE_SECONDS = 3
    revoked_here = api_key_issue(tenant=tenant_a.tenant, name="here")
    revoked_elsewhere = api_key_issue(tenant=tenant_a.tenant, name="elsewhere")
    clients = {}
    for issued in (revoked_here, revoked_elsewhere):
        clients[issued.api_key.name] = APIClient()
        clients[issued.api_key.name].credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw_key}")
        assert clients[issued.api_key.name].get("/api/v1/agents/").status_code == 200

    api_key_revoke(api_key=revoked_here.api_key)
    assert clients["here"].get("/api/v1/agents/").status_code == 401

    ApiKey.objects.filter(pk=revoked_elsewhere.api_key.pk).update(revoked_at=timezone.now())
    assert clients["elsewhere"].get("/api/v1/agents/").status_code == 200  # remembered
    get_redis().incr(GENERATION_KEY)
    time.sleep(CHECK_SECONDS + 0.1)
    assert clients["elsewhere"].get("/api/v1/agents/").status_code == 401

    fresh = api_key_issue(tenant=tenant_a.tenant, name="fresh")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {fresh.raw_key}")
    assert client.get("/api/v1/agents/").status_code == 200
    tenant_suspend(tenant=tenant_a.tenant)
    response = client.get("/api/v1/agents/")
    assert response.status_code == 403
    assert error_of(response)["code"] == "tenant_suspended"


def test_key_records_last_use(tenant_a) -> None:
    issued = api_key_issue(tenant=tenant_a.tenant)
    assert issued.api_key.last_used_at is None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw_key}")
    client.get("/api/v1/credits/")
    assert ApiKey.objects.get(pk=issued.api_key.pk).last_used_at is not None


def test_keys_are_stored_hashed(tenant_a) -> None:
    issued = api_key_issue(tenant=tenant_a.tenant)
    stored = ApiKey.objects.get(pk=issued.api_key.pk)
    secret_part = issued.raw_key.split("_", 2)[2]
    assert secret_part not in stored.hashed_key
    assert issued.raw_key not in str(ApiKey.objects.filter(pk=stored.pk).values().first())


def test_suspended_tenant_is_403(tenant_a) -> None:
    tenant_suspend(tenant=tenant_a.tenant)
    response = tenant_a.client().get("/api/v1/agents/")
    assert response.status_code == 403
    assert error_of(response)["code"] == "tenant_suspended"


def test_validation_error_names_the_field(tenant_a) -> None:
    response = tenant_a.client().post(
        "/api/v1/agents/", {"name": "", "temperature": "hot", "colour": "red"}, format="json"
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert {"name", "temperature"} <= set(error["details"])


def test_unknown_fields_are_refused(tenant_a) -> None:
    response = tenant_a.client().post(
        "/api/v1/agents/", {"name": "Ann", "colour": "red"}, format="json"
    )
    assert response.status_code == 400
    assert "colour" in error_of(response)["details"]


def test_malformed_json_is_400(tenant_a) -> None:
    response = tenant_a.client().post("/api/v1/agents/", "{nope", content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_request"


def test_wrong_content_type_is_415(tenant_a) -> None:
    response = tenant_a.client().post("/api/v1/agents/", "name=x", content_type="text/plain")
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


def test_unknown_id_and_unknown_path_are_404_in_the_error_shape(tenant_a) -> None:
    client = tenant_a.client()
    response = client.get(f"/api/v1/agents/{uuid.uuid4()}/")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_wrong_method_is_405(tenant_a) -> None:
    response = tenant_a.client().delete("/api/v1/credits/")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_rate_limit_is_429_with_retry_after(tenant_a) -> None:
    issued = api_key_issue(tenant=tenant_a.tenant)
    ApiKey.objects.filter(pk=issued.api_key.pk).update(rate_limit_per_minute=3)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw_key}")
    statuses = [client.get("/api/v1/credits/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/v1/credits/")
    error = error_of(response)
    assert error["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    # Another key of the same tenant has its own budget.
    assert tenant_a.client().get("/api/v1/credits/").status_code == 200


def test_unhandled_error_in_a_view_is_500_in_the_error_shape(tenant_a, monkeypatch) -> None:
    def broken() -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr("billing.api.views.selectors.credit_balance_get", broken)
    client = tenant_a.client()
    client.raise_request_exception = False
    response = client.get("/api/v1/credits/")
    assert response.status_code == 500
    assert error_of(response)["code"] == "internal_error"
    assert "boom" not in response.content.decode()


def test_django_level_500_on_an_api_path_is_json(tenant_a, monkeypatch) -> None:
    def broken(**kwargs):
        raise RuntimeError("routing exploded")

    monkeypatch.setattr("tenants.middleware.tenant_get_by_domain", broken)
    client = tenant_a.client()
    client.raise_request_exception = False
    response = client.get("/api/v1/credits/")
    assert response.status_code == 500
    assert error_of(response)["code"] == "internal_error"


def test_another_tenants_key_never_sees_or_touches_its_rows(tenant_a, tenant_b) -> None:
    created = tenant_a.client().post("/api/v1/agents/", {"name": "A's agent"}, format="json")
    assert created.status_code == 201
    agent_id = created.json()["id"]
    b = tenant_b.client()
    listed = b.get("/api/v1/agents/").json()["results"]
    assert agent_id not in {item["id"] for item in listed}
    missing = b.get(f"/api/v1/agents/{uuid.uuid4()}/")
    for response in (
        b.get(f"/api/v1/agents/{agent_id}/"),
        b.patch(f"/api/v1/agents/{agent_id}/", {"name": "hijacked"}, format="json"),
        b.delete(f"/api/v1/agents/{agent_id}/"),
    ):
        assert response.status_code == 404
        assert response.json() == missing.json()
    with tenant_a.schema():
        assert Agent.objects.get(pk=agent_id).name == "A's agent"
    assert b.get("/api/v1/credits/").json()["balance"] == 100


def test_agent_crud_and_cursor_pagination(tenant_a) -> None:
    client = tenant_a.client()
    for index in range(3):
        assert (
            client.post("/api/v1/agents/", {"name": f"Agent {index}"}, format="json").status_code
            == 201
        )
    page = client.get("/api/v1/agents/?page_size=2").json()
    assert set(page) == {"results", "next"}
    assert len(page["results"]) == 2
    rest = client.get(page["next"]).json()
    assert rest["next"] is None
    names = {item["name"] for item in page["results"] + rest["results"]}
    assert {"Agent 0", "Agent 1", "Agent 2"} <= names
    agent_id = page["results"][0]["id"]
    assert (
        client.patch(f"/api/v1/agents/{agent_id}/", {"temperature": 0.9}, format="json").json()[
            "temperature"
        ]
        == 0.9
    )
    assert client.delete(f"/api/v1/agents/{agent_id}/").status_code == 204


def test_unknown_api_paths_are_json_404_even_in_debug(tenant_a, settings) -> None:
    settings.DEBUG = True
    response = tenant_a.client().get("/api/v1/no-such-resource/")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert response.client.get("/api/nothing-here").json()["error"]["code"] == "not_found"
