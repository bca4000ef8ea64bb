"""Tenant pages by `/t/<slug>/` and by domain; the platform admin in the public schema."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.test import Client

from tenants.models import Domain
from tenants.services import tenant_suspend


def test_tenant_admin_lives_under_its_prefix_with_its_own_users(
    tenant_a, tenant_b, client: Client
) -> None:
    with tenant_a.schema():
        get_user_model().objects.create_superuser(username="ops_a", password="pw-a-123456")
    assert client.get(f"/t/{tenant_a.slug}/admin/login/").status_code == 200
    # Not a platform user: the platform login shows the form again.
    assert (
        client.post("/admin/login/", {"username": "ops_a", "password": "pw-a-123456"}).status_code
        == 200
    )
    response = client.post(
        f"/t/{tenant_a.slug}/admin/login/",
        {"username": "ops_a", "password": "pw-a-123456", "next": f"/t/{tenant_a.slug}/admin/"},
    )
    assert response.status_code == 302
    assert response["Location"] == f"/t/{tenant_a.slug}/admin/"
    index = client.get(f"/t/{tenant_a.slug}/admin/")
    assert index.status_code == 200
    assert b"Tenant A" in index.content
    # The same operator is unknown to tenant B.
    other = Client()
    response = other.post(
        f"/t/{tenant_b.slug}/admin/login/", {"username": "ops_a", "password": "pw-a-123456"}
    )
    assert response.status_code == 200  # the form again, with an error


def test_platform_admin_manages_tenants(tenant_a, client: Client) -> None:
    get_user_model().objects.create_superuser(username="root", password="pw-root-123456")
    client.login(username="root", password="pw-root-123456")
    listing = client.get("/admin/tenants/tenant/")
    assert listing.status_code == 200
    assert tenant_a.slug.encode() in listing.content
    assert b"_template" not in listing.content
    response = client.post(
        "/admin/tenants/tenant/",
        {"action": "suspend", "_selected_action": [tenant_a.tenant.pk]},
    )
    assert response.status_code == 302
    assert tenant_a.tenant.is_active is False


def test_unknown_and_suspended_tenant_pages(tenant_a, client: Client) -> None:
    assert client.get("/t/no_such_tenant/admin/").status_code == 404
    tenant_suspend(tenant=tenant_a.tenant)
    response = client.get(f"/t/{tenant_a.slug}/admin/login/")
    assert response.status_code == 403
    assert b"suspended" in response.content


def test_a_tenant_domain_routes_to_its_pages(tenant_a, client: Client) -> None:
    Domain.objects.create(domain="support.shop-a.test", tenant=tenant_a.tenant, is_primary=True)
    response = client.get("/admin/login/", HTTP_HOST="support.shop-a.test")
    assert response.status_code == 200
    assert b"Tenant A" in response.content
    assert (
        b"Hub platform" not in client.get("/admin/login/", HTTP_HOST="support.shop-a.test").content
    )
    assert b"Hub platform" in client.get("/admin/login/").content
