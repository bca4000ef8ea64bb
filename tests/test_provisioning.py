"""`provision_tenant` exactly as CONTRACT §3, run as a real command against the test database."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django_tenants.utils import schema_context, schema_exists

from agents.models import Agent
from billing.selectors import credit_balance_get
from tenants.connection import tenant_connection
from tenants.models import Domain, Tenant
from tenants.selectors import api_key_get_for_raw_key
from tenants.services import InvalidSlug, TenantExists, tenant_provision
from tests import support


def _provision(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "provision_tenant", *args],
        cwd=support.ROOT,
        env=support.child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _drop(slug: str) -> None:
    tenant_connection().set_schema_to_public()
    tenant = Tenant.objects.filter(schema_name=slug).first()
    if tenant:
        tenant.delete(force_drop=True)


def test_provision_prints_one_json_line_and_creates_a_working_tenant(committed_db: dict) -> None:
    try:
        result = _provision(
            "shop_one",
            "--name",
            "Shop One",
            "--credits",
            "250",
            "--domain",
            "shop.example.test",
            "--json",
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 1
        payload = json.loads(lines[0])
        assert payload["slug"] == payload["schema"] == "shop_one"
        assert payload["admin_url"].endswith("/t/shop_one/admin/")
        assert schema_exists("shop_one")
        api_key = api_key_get_for_raw_key(raw_key=payload["api_key"])
        assert api_key is not None
        assert api_key.tenant.schema_name == "shop_one"
        assert Domain.objects.get(domain="shop.example.test").tenant.schema_name == "shop_one"
        with schema_context("shop_one"):
            assert credit_balance_get() == 250
            # The cloned schema has every tenant table and none of another tenant's rows.
            assert Agent.objects.count() == 0
    finally:
        _drop("shop_one")


@pytest.mark.parametrize("slug", ["Bad", "ab", "1abc", "public", "pg_shop", "has-dash", "x" * 64])
def test_invalid_slug_exits_1_with_one_line(committed_db: dict, slug: str) -> None:
    result = _provision(slug, "--name", "X", "--json")
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "slug" in result.stderr.lower()
    assert not Tenant.objects.filter(schema_name=slug).exists()


def test_existing_slug_exits_1_and_leaves_the_tenant_alone(committed_db: dict) -> None:
    existing = committed_db["a"]
    result = _provision(existing.slug, "--name", "Impostor", "--json")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"CommandError: A tenant with the slug '{existing.slug}' already exists."
    ]
    assert Tenant.objects.get(schema_name=existing.slug).name == "Tenant A"


def test_service_refuses_bad_and_duplicate_slugs(tenant_a) -> None:
    with pytest.raises(InvalidSlug):
        tenant_provision(slug="information_schema", name="x")
    with pytest.raises(TenantExists):
        tenant_provision(slug=tenant_a.slug, name="x")


def test_template_schema_is_not_a_tenant_anyone_reaches(tenant_a, client) -> None:
    assert Tenant.objects.filter(schema_name="_template", is_template=True).exists()
    assert client.get("/t/_template/admin/").status_code == 404
