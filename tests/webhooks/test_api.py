"""`/api/v1/webhooks/` through its public surface: CRUD, the secret shown once, the SSRF rules
at save time, deliveries and redelivery, and one tenant's key never reaching another's."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from tests.webhooks.conftest import Receiver
from webhooks.models import WebhookDelivery, WebhookSubscription
from webhooks.services import webhook_event_dispatch

URL = "http://127.0.0.1:9/hook"


def _create(client, **body) -> dict:
    response = client.post(
        "/api/v1/webhooks/", {"url": URL, "events": ["message.created"], **body}, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()


def test_create_generates_a_secret_shown_only_once(tenant_a) -> None:
    client = tenant_a.client()
    created = _create(client, description="CRM sync")
    assert set(created) == {
        "id",
        "url",
        "events",
        "enabled",
        "description",
        "created_at",
        "updated_at",
        "secret",
    }
    assert created["url"] == URL
    assert created["events"] == ["message.created"]
    assert created["enabled"] is True
    assert created["description"] == "CRM sync"
    assert created["secret"].startswith("whsec_")
    assert len(created["secret"]) >= 40

    fetched = client.get(f"/api/v1/webhooks/{created['id']}/").json()
    assert "secret" not in fetched
    assert fetched["id"] == created["id"]
    listed = client.get("/api/v1/webhooks/").json()
    assert [item["id"] for item in listed["results"]] == [created["id"]]
    assert listed["next"] is None
    assert "secret" not in listed["results"][0]

    with tenant_a.schema():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT secret FROM webhooks_webhooksubscription WHERE id = %s", [created["id"]]
            )
            raw = cursor.fetchone()[0]
        assert created["secret"] not in raw
        assert WebhookSubscription.objects.get(pk=created["id"]).secret == created["secret"]


def test_create_with_a_chosen_secret_and_repeated_events(tenant_a) -> None:
    created = _create(
        tenant_a.client(),
        secret="my-own-secret-of-24-chars",
        events=["contact.created", "message.created", "contact.created"],
        enabled=False,
    )
    assert created["secret"] == "my-own-secret-of-24-chars"
    assert created["events"] == ["contact.created", "message.created"]
    assert created["enabled"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": URL, "events": ["message.created"], "callback": "x"}, "callback"),
        ({"url": URL, "events": ["message.deleted"]}, "events"),
        ({"url": URL, "events": []}, "events"),
        ({"url": URL}, "events"),
        ({"events": ["message.created"]}, "url"),
        ({"url": URL, "events": ["message.created"], "secret": "short"}, "secret"),
        ({"url": "ftp://example.com/hook", "events": ["message.created"]}, "url"),
        ({"url": "http:///no-host", "events": ["message.created"]}, "url"),
        ({"url": "http://10.0.0.1/hook", "events": ["message.created"]}, "url"),
        ({"url": "http://192.168.1.20:8080/hook", "events": ["message.created"]}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data/", "events": ["message.created"]}, "url"),
        ({"url": "http://[::ffff:10.0.0.1]/hook", "events": ["message.created"]}, "url"),
        ({"url": "http://0.0.0.0:8000/hook", "events": ["message.created"]}, "url"),
        ({"url": "http://224.0.0.1/hook", "events": ["message.created"]}, "url"),
        ({"url": "http://host.invalid/hook", "events": ["message.created"]}, "url"),
    ],
)
def test_create_refuses_invalid_bodies_naming_the_field(tenant_a, body: dict, field: str) -> None:
    response = tenant_a.client().post("/api/v1/webhooks/", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]
    with tenant_a.schema():
        assert not WebhookSubscription.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1]:8080/hook",
        "http://localhost:8080/hook",
        "http://127.0.0.1:8080/hook",
        "http://2130706433:8080/hook",
    ],
)
def test_loopback_is_refused_unless_allowed(tenant_a, settings, url: str) -> None:
    settings.HUB_WEBHOOKS_ALLOW_LOOPBACK = False
    settings.HUB_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = False
    client = tenant_a.client()
    response = client.post(
        "/api/v1/webhooks/", {"url": url, "events": ["message.created"]}, format="json"
    )
    assert response.status_code == 400
    [message] = response.json()["error"]["details"]["url"]
    assert "loopback" in message
    settings.HUB_WEBHOOKS_ALLOW_LOOPBACK = True
    _create(client, url=url)


def test_private_networks_are_allowed_only_by_the_setting(tenant_a, settings) -> None:
    client = tenant_a.client()
    body = {"url": "http://10.0.0.1/hook", "events": ["message.created"]}
    assert client.post("/api/v1/webhooks/", body, format="json").status_code == 400
    settings.HUB_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    assert client.post("/api/v1/webhooks/", body, format="json").status_code == 201
    # Never an address no receiver can be at.
    body["url"] = "http://0.0.0.0/hook"
    assert client.post("/api/v1/webhooks/", body, format="json").status_code == 400


def test_patch_changes_fields_and_takes_a_new_secret_without_echoing_it(tenant_a) -> None:
    client = tenant_a.client()
    created = _create(client)
    response = client.patch(
        f"/api/v1/webhooks/{created['id']}/",
        {
            "events": ["conversation.updated"],
            "enabled": False,
            "description": "paused",
            "secret": "rotated-secret-0123456789",
        },
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert "secret" not in body
    assert body["events"] == ["conversation.updated"]
    assert body["enabled"] is False
    assert body["description"] == "paused"
    assert body["url"] == URL
    with tenant_a.schema():
        assert (
            WebhookSubscription.objects.get(pk=created["id"]).secret == "rotated-secret-0123456789"
        )

    bad = client.patch(
        f"/api/v1/webhooks/{created['id']}/", {"url": "http://10.1.2.3/"}, format="json"
    )
    assert bad.status_code == 400
    assert "url" in bad.json()["error"]["details"]
    unknown = client.patch(f"/api/v1/webhooks/{created['id']}/", {"colour": "red"}, format="json")
    assert unknown.status_code == 400
    assert "colour" in unknown.json()["error"]["details"]
    assert client.put(f"/api/v1/webhooks/{created['id']}/", {}, format="json").status_code == 405


def test_delete_removes_the_subscription_and_its_deliveries(tenant_a) -> None:
    client = tenant_a.client()
    created = _create(client)
    with tenant_a.schema():
        webhook_event_dispatch(event="message.created", payload={"id": "m"})
    assert client.delete(f"/api/v1/webhooks/{created['id']}/").status_code == 204
    assert client.get(f"/api/v1/webhooks/{created['id']}/").status_code == 404
    with tenant_a.schema():
        assert not WebhookDelivery.objects.exists()


def test_deliveries_are_listed_newest_first_with_their_attempts(
    tenant_a, receiver: Receiver
) -> None:
    from webhooks.services import webhook_delivery_attempt

    client = tenant_a.client()
    created = _create(client, url=receiver.url, events=["message.created", "contact.created"])
    receiver.respond(500)
    with tenant_a.schema():
        [older] = webhook_event_dispatch(event="message.created", payload={"id": "m-1"})
        webhook_delivery_attempt(delivery_id=older.pk)
        [newer] = webhook_event_dispatch(event="contact.created", payload={"id": "c-1"})

    response = client.get(f"/api/v1/webhooks/{created['id']}/deliveries/")
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["results"]] == [str(newer.pk), str(older.pk)]
    first = body["results"][1]
    assert first["event"] == "message.created"
    assert first["status"] == "failed"
    assert first["attempts"] == 1
    assert first["last_status_code"] == 500
    assert body["results"][0]["attempts"] == 0
    assert body["results"][0]["last_status_code"] is None

    page = client.get(f"/api/v1/webhooks/{created['id']}/deliveries/?page_size=1").json()
    assert [item["id"] for item in page["results"]] == [str(newer.pk)]
    rest = client.get(page["next"]).json()
    assert [item["id"] for item in rest["results"]] == [str(older.pk)]
    assert rest["next"] is None


def test_redeliver_queues_the_delivery_again(tenant_a) -> None:
    client = tenant_a.client()
    created = _create(client)
    with tenant_a.schema():
        [delivery] = webhook_event_dispatch(event="message.created", payload={"id": "m"})
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status="dead", attempt_count=30)
    url = f"/api/v1/webhooks/{created['id']}/deliveries/{delivery.pk}/redeliver/"
    response = client.post(url)
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert response.json()["attempts"] == 30

    client.patch(f"/api/v1/webhooks/{created['id']}/", {"enabled": False}, format="json")
    refused = client.post(url)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "webhook_disabled"

    missing = client.post(f"/api/v1/webhooks/{created['id']}/deliveries/{uuid.uuid4()}/redeliver/")
    assert missing.status_code == 404


def test_another_tenants_key_cannot_see_or_touch_a_subscription(tenant_a, tenant_b) -> None:
    a_client, b_client = tenant_a.client(), tenant_b.client()
    created = _create(a_client, description="A's")
    with tenant_a.schema():
        [delivery] = webhook_event_dispatch(event="message.created", payload={"id": "m"})
    own = f"/api/v1/webhooks/{created['id']}/"
    unknown = f"/api/v1/webhooks/{uuid.uuid4()}/"

    assert b_client.get("/api/v1/webhooks/").json()["results"] == []
    for method, suffix, body in [
        ("get", "", None),
        ("patch", "", {"description": "B was here"}),
        ("delete", "", None),
        ("get", "deliveries/", None),
        ("post", f"deliveries/{delivery.pk}/redeliver/", None),
    ]:
        theirs = getattr(b_client, method)(own + suffix, body, format="json")
        never = getattr(b_client, method)(unknown + suffix, body, format="json")
        assert theirs.status_code == never.status_code == 404, (method, suffix)
        assert (
            theirs.json()
            == never.json()
            == {"error": {"code": "not_found", "message": "No such webhook.", "details": {}}}
        )

    # A's own key still sees it, unchanged.
    fetched = a_client.get(own).json()
    assert fetched["description"] == "A's"
    assert [item["id"] for item in a_client.get(own + "deliveries/").json()["results"]] == [
        str(delivery.pk)
    ]
    with tenant_b.schema():
        assert not WebhookSubscription.objects.exists()


def test_a_delivery_of_another_webhook_is_not_found_under_this_one(tenant_a) -> None:
    client = tenant_a.client()
    first, second = _create(client), _create(client, events=["contact.created"])
    with tenant_a.schema():
        [delivery] = webhook_event_dispatch(event="message.created", payload={"id": "m"})
        assert str(delivery.subscription_id) == first["id"]
    response = client.post(f"/api/v1/webhooks/{second['id']}/deliveries/{delivery.pk}/redeliver/")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "No such delivery."


def test_requires_an_api_key(tenant_a) -> None:
    from rest_framework.test import APIClient

    response = APIClient().get("/api/v1/webhooks/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_the_endpoints_are_in_the_openapi_schema(tenant_a) -> None:
    from rest_framework.test import APIClient

    schema = APIClient().get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/webhooks/"])
    assert {"get", "patch", "delete"} <= set(paths["/api/v1/webhooks/{id}/"])
    assert "get" in paths["/api/v1/webhooks/{subscription_id}/deliveries/"]
    redeliver = paths["/api/v1/webhooks/{subscription_id}/deliveries/{delivery_id}/redeliver/"]
    assert {"202", "404", "409"} <= set(redeliver["post"]["responses"])
    assert "secret" in schema["components"]["schemas"]["WebhookCreated"]["properties"]
    assert "secret" not in schema["components"]["schemas"]["WebhookOutput"]["properties"]
