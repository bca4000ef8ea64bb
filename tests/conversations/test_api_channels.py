"""`channels/`: CRUD, config validated per kind, secrets write-only and encrypted at rest."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.db import connection

from channels_app.models import Channel
from tests.factories import AgentFactory, ChannelFactory, ConversationFactory
from tests.support import error_of

SECRETS = {
    "access_token": "EAAG-secret-access-token-1234567890",
    "app_secret": "meta-app-secret-0987654321",
    "verify_token": "verify-me-secret-5555",
    "bot_token": "123456789:AAE-telegram-secret-bot-token-xyz",
    "secret_token": "tg-webhook-secret-token-77",
    "signing_secret": "slack-signing-secret-8888",
    "auth_token": "twilio-auth-token-secret-9999",
    "smtp_password": "smtp-password-secret-4444",
    "imap_password": "imap-password-secret-3333",
}

VALID: dict[str, dict[str, Any]] = {
    "whatsapp": {
        "phone_number_id": "106540352242922",
        "access_token": SECRETS["access_token"],
        "app_secret": SECRETS["app_secret"],
        "verify_token": SECRETS["verify_token"],
    },
    "whatsapp_twilio": {
        "provider": "twilio",
        "account_sid": "AC0123456789abcdef",
        "auth_token": SECRETS["auth_token"],
        "from_number": "+14155238886",
    },
    "instagram": {
        "instagram_account_id": "17841400000000000",
        "access_token": SECRETS["access_token"],
        "app_secret": SECRETS["app_secret"],
        "verify_token": SECRETS["verify_token"],
    },
    "messenger": {
        "page_id": "1000000000001",
        "access_token": SECRETS["access_token"],
        "app_secret": SECRETS["app_secret"],
        "verify_token": SECRETS["verify_token"],
    },
    "telegram": {"bot_token": SECRETS["bot_token"], "secret_token": SECRETS["secret_token"]},
    "slack": {"bot_token": "xoxb-slack-bot-token", "signing_secret": SECRETS["signing_secret"]},
    "sms": {
        "provider": "twilio",
        "account_sid": "AC0123456789abcdef",
        "auth_token": SECRETS["auth_token"],
        "from_number": "+14155238886",
    },
    "email": {
        "from_address": "support@shop.example",
        "smtp_host": "smtp.shop.example",
        "smtp_port": 587,
        "smtp_username": "support",
        "smtp_password": SECRETS["smtp_password"],
        "smtp_security": "starttls",
        "imap_host": "imap.shop.example",
        "imap_username": "support",
        "imap_password": SECRETS["imap_password"],
    },
    "signal": {"api_url": "http://signal-cli.internal:8080", "number": "+4915112345678"},
    "webchat": {
        "allowed_origins": ["https://shop.example", "http://localhost:3000/"],
        "title": "Chat with us",
        "color": "#2563eb",
    },
    "api": {},
}


def _kind(name: str) -> str:
    return name.split("_")[0]


def _assert_no_secret(response: Any) -> None:
    raw = response.content.decode()
    for secret in SECRETS.values():
        assert secret not in raw


def _create(client: Any, name: str, **extra: Any) -> Any:
    body = {"kind": _kind(name), "name": f"My {name}", "config": VALID[name], **extra}
    return client.post("/api/v1/channels/", body, format="json")


@pytest.mark.parametrize("name", sorted(VALID))
def test_create_every_kind_with_its_config(tenant_a, name) -> None:
    response = _create(tenant_a.client(), name)
    assert response.status_code == 201, response.content
    _assert_no_secret(response)
    body = response.json()
    assert set(body) == {
        "id",
        "kind",
        "name",
        "agent",
        "enabled",
        "channel_token",
        "webhook_url",
        "config",
        "secrets_set",
        "created_at",
        "updated_at",
    }
    assert body["kind"] == _kind(name)
    assert body["enabled"] is True
    assert body["agent"] is None
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,}", body["channel_token"])
    assert body["webhook_url"] == (
        f"http://testserver/webhooks/{tenant_a.slug}/{_kind(name)}/{body['channel_token']}/"
    )
    sent_secrets = sorted(key for key in VALID[name] if key in SECRETS)
    assert body["secrets_set"] == sent_secrets
    assert not set(body["config"]) & set(SECRETS)
    for key, value in VALID[name].items():
        if key not in SECRETS and key != "allowed_origins":
            assert body["config"][key] == value


def test_defaults_and_normalisation_are_stored(tenant_a) -> None:
    client = tenant_a.client()
    whatsapp = _create(client, "whatsapp").json()
    assert whatsapp["config"]["provider"] == "meta"
    webchat = _create(client, "webchat").json()
    assert webchat["config"]["allowed_origins"] == [
        "https://shop.example",
        "http://localhost:3000",
    ]


def test_secrets_are_encrypted_at_rest(tenant_a) -> None:
    channel_id = _create(tenant_a.client(), "telegram").json()["id"]
    with tenant_a.schema(), connection.cursor() as cursor:
        cursor.execute("SELECT config FROM channels_app_channel WHERE id = %s", [channel_id])
        (stored,) = cursor.fetchone()
        assert SECRETS["bot_token"] not in stored
        assert Channel.objects.get(pk=channel_id).config["bot_token"] == SECRETS["bot_token"]


@pytest.mark.parametrize(
    ("kind", "config", "field"),
    [
        ("whatsapp", {**VALID["whatsapp"], "phone_number_id": None}, "config.phone_number_id"),
        (
            "whatsapp",
            {k: v for k, v in VALID["whatsapp"].items() if k != "app_secret"},
            "config.app_secret",
        ),
        ("whatsapp", {**VALID["whatsapp"], "provider": "carrier-pigeon"}, "config.provider"),
        (
            "whatsapp",
            {"provider": "twilio", "auth_token": "x", "from_number": "+14155238886"},
            "config.account_sid",
        ),
        (
            "whatsapp",
            {**VALID["whatsapp_twilio"], "from_number": "0800 FLOWERS"},
            "config.from_number",
        ),
        ("whatsapp", {**VALID["whatsapp"], "colour": "red"}, "config.colour"),
        (
            "instagram",
            {**VALID["instagram"], "instagram_account_id": ""},
            "config.instagram_account_id",
        ),
        ("messenger", {**VALID["messenger"], "page_id": 12}, "config.page_id"),
        ("telegram", {**VALID["telegram"], "bot_token": "not-a-token"}, "config.bot_token"),
        ("telegram", {**VALID["telegram"], "secret_token": "has spaces!"}, "config.secret_token"),
        ("slack", {"bot_token": "xoxb-1"}, "config.signing_secret"),
        ("sms", {**VALID["sms"], "provider": "vonage"}, "config.provider"),
        ("email", {**VALID["email"], "smtp_security": "tls"}, "config.smtp_security"),
        ("email", {**VALID["email"], "smtp_port": 70000}, "config.smtp_port"),
        ("email", {**VALID["email"], "from_address": "nope"}, "config.from_address"),
        ("email", {**VALID["email"], "imap_host": None}, "config.imap_host"),
        ("signal", {**VALID["signal"], "api_url": "ftp://x"}, "config.api_url"),
        ("webchat", {"allowed_origins": "https://shop.example"}, "config.allowed_origins"),
        ("webchat", {"allowed_origins": ["https://shop.example/path"]}, "config.allowed_origins"),
        ("webchat", {**VALID["webchat"], "color": "blue"}, "config.color"),
        ("api", {"anything": 1}, "config.anything"),
        ("api", ["not", "an", "object"], "config"),
    ],
)
def test_invalid_config_is_400_naming_the_key(tenant_a, kind, config, field) -> None:
    response = tenant_a.client().post(
        "/api/v1/channels/", {"kind": kind, "name": "x", "config": config}, format="json"
    )
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert field in error["details"]
    with tenant_a.schema():
        assert not Channel.objects.filter(name="x").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "fax", "name": "x"}, "kind"),
        ({"kind": "api", "name": ""}, "name"),
        ({"kind": "api", "name": "x", "colour": "red"}, "colour"),
        ({"kind": "api", "name": "x", "agent": str(uuid.uuid4())}, "agent"),
        ({"kind": "api", "name": "x", "enabled": "maybe"}, "enabled"),
    ],
)
def test_invalid_fields_are_400_naming_the_field(tenant_a, body, field) -> None:
    response = tenant_a.client().post("/api/v1/channels/", body, format="json")
    assert response.status_code == 400
    assert field in error_of(response)["details"]


def test_agent_is_set_and_another_tenants_agent_is_refused(tenant_a, tenant_b) -> None:
    with tenant_a.schema():
        agent = AgentFactory.create()
    created = _create(tenant_a.client(), "api", agent=str(agent.pk), enabled=False)
    assert created.status_code == 201
    assert created.json()["agent"] == str(agent.pk)
    assert created.json()["enabled"] is False
    refused = _create(tenant_b.client(), "api", agent=str(agent.pk))
    assert refused.status_code == 400
    assert "agent" in error_of(refused)["details"]


def test_patch_merges_config_and_keeps_omitted_secrets(tenant_a) -> None:
    client = tenant_a.client()
    channel_id = _create(client, "whatsapp").json()["id"]
    response = client.patch(
        f"/api/v1/channels/{channel_id}/",
        {
            "name": "Renamed",
            "config": {"phone_number_id": "999", "business_account_id": "42"},
            "enabled": False,
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    _assert_no_secret(response)
    body = response.json()
    assert body["name"] == "Renamed"
    assert body["enabled"] is False
    assert body["config"] == {
        "provider": "meta",
        "phone_number_id": "999",
        "business_account_id": "42",
    }
    assert body["secrets_set"] == ["access_token", "app_secret", "verify_token"]
    with tenant_a.schema():
        stored = Channel.objects.get(pk=channel_id).config
    assert stored["access_token"] == SECRETS["access_token"]
    # A new secret replaces the old; null removes an optional key.
    client.patch(
        f"/api/v1/channels/{channel_id}/",
        {"config": {"access_token": "rotated-token-abc", "business_account_id": None}},
        format="json",
    )
    with tenant_a.schema():
        stored = Channel.objects.get(pk=channel_id).config
    assert stored["access_token"] == "rotated-token-abc"
    assert "business_account_id" not in stored
    # Removing a required key is refused, and nothing changes.
    refused = client.patch(
        f"/api/v1/channels/{channel_id}/", {"config": {"app_secret": None}}, format="json"
    )
    assert refused.status_code == 400
    assert "config.app_secret" in error_of(refused)["details"]


def test_switching_whatsapp_provider_needs_the_new_providers_credentials(tenant_a) -> None:
    client = tenant_a.client()
    channel_id = _create(client, "whatsapp").json()["id"]
    url = f"/api/v1/channels/{channel_id}/"
    refused = client.patch(url, {"config": {"provider": "twilio"}}, format="json")
    assert refused.status_code == 400
    assert "config.account_sid" in error_of(refused)["details"]
    switched = client.patch(url, {"config": VALID["whatsapp_twilio"]}, format="json")
    assert switched.status_code == 200
    assert switched.json()["secrets_set"] == ["auth_token"]
    with tenant_a.schema():
        assert "access_token" not in Channel.objects.get(pk=channel_id).config


def test_kind_is_immutable_and_unknown_fields_refused(tenant_a) -> None:
    client = tenant_a.client()
    channel = _create(client, "webchat").json()
    url = f"/api/v1/channels/{channel['id']}/"
    changed = client.patch(url, {"kind": "telegram"}, format="json")
    assert changed.status_code == 400
    assert "kind" in error_of(changed)["details"]
    same = client.patch(url, {"kind": "webchat", "name": "Same kind"}, format="json")
    assert same.status_code == 200
    unknown = client.patch(url, {"channel_token": "mine"}, format="json")
    assert unknown.status_code == 400
    assert "channel_token" in error_of(unknown)["details"]
    assert client.get(url).json()["channel_token"] == channel["channel_token"]


def test_list_retrieve_and_never_a_secret(tenant_a) -> None:
    client = tenant_a.client()
    ids = {_create(client, name).json()["id"] for name in ("whatsapp", "telegram", "email")}
    page = client.get("/api/v1/channels/?page_size=2")
    assert page.status_code == 200
    _assert_no_secret(page)
    rest = client.get(page.json()["next"])
    _assert_no_secret(rest)
    listed = {item["id"] for item in page.json()["results"] + rest.json()["results"]}
    assert ids <= listed
    for channel_id in ids:
        response = client.get(f"/api/v1/channels/{channel_id}/")
        assert response.status_code == 200
        _assert_no_secret(response)


def test_delete_is_409_while_conversations_use_it(tenant_a) -> None:
    client = tenant_a.client()
    unused = _create(client, "api").json()["id"]
    assert client.delete(f"/api/v1/channels/{unused}/").status_code == 204
    assert client.get(f"/api/v1/channels/{unused}/").status_code == 404
    with tenant_a.schema():
        used = ConversationFactory.create().channel
    response = client.delete(f"/api/v1/channels/{used.pk}/")
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "channel_in_use"
    assert "enabled" in error["message"]
    with tenant_a.schema():
        assert Channel.objects.filter(pk=used.pk).exists()


def test_another_tenants_channel_is_not_found(tenant_a, tenant_b) -> None:
    with tenant_a.schema():
        channel = ChannelFactory.create()
    b = tenant_b.client()
    assert str(channel.pk) not in {
        item["id"] for item in b.get("/api/v1/channels/").json()["results"]
    }
    missing = b.get(f"/api/v1/channels/{uuid.uuid4()}/")
    assert missing.status_code == 404
    url = f"/api/v1/channels/{channel.pk}/"
    for response in (
        b.get(url),
        b.patch(url, {"name": "hijacked"}, format="json"),
        b.delete(url),
    ):
        assert response.status_code == 404
        assert response.json() == missing.json()
    with tenant_a.schema():
        assert Channel.objects.get(pk=channel.pk).name == channel.name
