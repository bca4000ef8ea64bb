"""The LLM call record in the tenant admin: listed and viewable, never added or edited."""

from __future__ import annotations

from django.test import Client

from agents.models import LlmCall
from tests.conftest import TenantInfo
from tests.factories import AgentFactory, UserFactory


def test_llm_calls_are_listed_read_only(tenant_a: TenantInfo, client: Client) -> None:
    with tenant_a.schema():
        client.force_login(UserFactory.create(username="root_llm", is_superuser=True))
        call = LlmCall.objects.create(
            agent=AgentFactory.create(name="Helper"),
            purpose=LlmCall.Purpose.REPLY,
            api_mode="responses",
            model="gpt-4.1-mini",
            input_tokens=21,
            output_tokens=9,
            total_tokens=30,
            latency_ms=120,
            attempts=1,
            outcome=LlmCall.Outcome.OK,
        )
    base = f"/t/{tenant_a.slug}/admin/agents/llmcall"

    listing = client.get(f"{base}/")
    assert listing.status_code == 200
    assert b"gpt-4.1-mini" in listing.content
    assert b"Helper" in listing.content
    assert client.get(f"{base}/add/").status_code == 403

    detail = client.get(f"{base}/{call.pk}/change/")
    assert detail.status_code == 200
    assert b'name="total_tokens"' not in detail.content  # no editable inputs
    assert client.post(f"{base}/{call.pk}/change/", {"total_tokens": 0}).status_code == 403
    with tenant_a.schema():
        assert LlmCall.objects.get(pk=call.pk).total_tokens == 30
