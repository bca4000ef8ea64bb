"""Shared fixtures. Two tenants are provisioned once per test database (per xdist worker) and
reused: most tests run inside a transaction that is rolled back, so their rows never leak. Tests
that need committed rows (real servers, real workers) use `committed_db` and clean up."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from hub import memo
from tenants.connection import tenant_connection
from tenants.models import Tenant
from tenants.services import tenant_provision, tenant_template_ensure
from tests import support


@dataclass(frozen=True)
class TenantInfo:
    slug: str
    api_key: str

    @property
    def tenant(self) -> Tenant:
        return Tenant.objects.get(schema_name=self.slug)

    def schema(self):
        return schema_context(self.slug)

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.api_key}")
        return client


@pytest.fixture(scope="session")
def django_db_setup(
    django_test_environment: None,
    django_db_blocker: pytest.FixtureRequest,
    django_db_modify_db_settings: None,
) -> Iterator[None]:
    """The one test database, whatever the selected tests ask for: pytest-django would create
    it only for tests using its `db` fixtures, and ours often commit instead (`committed_db`)."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        config = setup_databases(verbosity=0, interactive=False, aliases={"default": False})
    yield
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        teardown_databases(config, verbosity=0)


@pytest.fixture(scope="session")
def tenants(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> dict[str, TenantInfo]:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        tenant_template_ensure()
        result = {}
        for key in ("a", "b"):
            provisioned = tenant_provision(
                slug=f"tenant_{key}", name=f"Tenant {key.upper()}", credits=100
            )
            result[key] = TenantInfo(
                slug=provisioned.tenant.schema_name, api_key=provisioned.api_key
            )
        tenant_connection().set_schema_to_public()
        return result


@pytest.fixture
def tenant_a(tenants: dict[str, TenantInfo], db: None) -> TenantInfo:
    return tenants["a"]


@pytest.fixture
def tenant_b(tenants: dict[str, TenantInfo], db: None) -> TenantInfo:
    return tenants["b"]


@pytest.fixture
def committed_db(
    tenants: dict[str, TenantInfo], django_db_blocker: pytest.FixtureRequest
) -> Iterator[dict[str, TenantInfo]]:
    """Database access outside a test transaction, so other processes see what the test writes."""
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        tenant_connection().set_schema_to_public()
        yield tenants
        tenant_connection().set_schema_to_public()


@pytest.fixture
def live_server_url(committed_db: dict[str, TenantInfo], tmp_path: Path) -> Iterator[str]:
    with support.asgi_server(tmp_path) as url:
        yield url


@pytest.fixture
def worker(committed_db: dict[str, TenantInfo], tmp_path: Path) -> Iterator[support.Process]:
    with support.celery_worker(tmp_path) as process:
        yield process


@pytest.fixture
def memo_clock(settings, monkeypatch: pytest.MonkeyPatch) -> support.MemoClock:
    """The memo on (the suite runs with it off), empty, on a clock of the test's own."""
    settings.HUB_TENANT_CACHE_SECONDS = 5
    clock = support.MemoClock()
    # The memo's own clock only: time.monotonic stays real for everything else in the process.
    monkeypatch.setattr(memo, "monotonic", clock)
    monkeypatch.setattr(memo, "_memo", {})
    monkeypatch.setattr(
        memo, "_watch", {"checked_at": float("-inf"), "generation": None, "ok": False}
    )
    monkeypatch.setattr(memo, "_bump_owed", {"owed": False})
    return clock


@pytest.fixture(autouse=True)
def _start_in_the_public_schema() -> Iterator[None]:
    """The test process's own connection keeps the last schema a request set; every test starts
    from public, as a request does."""
    tenant_connection().set_schema_to_public()
    yield
    tenant_connection().set_schema_to_public()
