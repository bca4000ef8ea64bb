"""Credits: adding them through the API (who may, idempotency, isolation), the tenant's own
prices, the low-balance alert (notification and `credits.low` webhook), and the usage report."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import CreditBalance, CreditLedgerEntry
from billing.selectors import credit_balance_get, credit_reply_price
from billing.services import InsufficientCredits, credit_add, credit_debit
from channels_app.models import Channel, ChannelKind
from conversations.models import Contact, Conversation, Message
from conversations.services.messages import message_receive, message_send
from inbox.models import Notification
from processing.models import ReplyCharge
from processing.services import conversation_drain
from tenants.connection import tenant_connection
from tenants.models import ApiKey, Tenant
from tenants.services import api_key_issue, api_key_revoke
from tests.factories import AgentFactory, UserFactory
from tests.support import error_of
from tests.webhooks.conftest import Receiver
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_delivery_attempt, webhook_subscription_create


def _manager(tenant_info: Any) -> APIClient:
    """A client with a key the platform admin allowed to manage credits."""
    issued = api_key_issue(tenant=tenant_info.tenant, name="billing")
    ApiKey.objects.filter(pk=issued.api_key.pk).update(can_manage_credits=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw_key}")
    return client


def _balance(tenant_info: Any) -> int:
    with tenant_info.schema():
        return credit_balance_get()


# --- POST credits/add/ ---------------------------------------------------------------------


def test_a_flagged_key_adds_credits_once_per_idempotency_key(tenant_a) -> None:
    client = _manager(tenant_a)
    start = _balance(tenant_a)
    payload = {"amount": 250, "reason": "invoice 2026-031", "idempotency_key": "inv-2026-031"}
    first = client.post("/api/v1/credits/add/", payload, format="json")
    assert first.status_code == 201, first.content
    entry = first.json()
    assert set(entry) == {"id", "amount", "balance_after", "reason", "message", "created_at"}
    assert (entry["amount"], entry["balance_after"], entry["reason"]) == (
        250,
        start + 250,
        "invoice 2026-031",
    )
    again = client.post("/api/v1/credits/add/", payload, format="json")
    assert again.status_code == 200
    assert again.json() == entry
    assert _balance(tenant_a) == start + 250
    conflict = client.post("/api/v1/credits/add/", {**payload, "amount": 300}, format="json")
    assert conflict.status_code == 409
    assert error_of(conflict)["code"] == "idempotency_key_reused"
    assert _balance(tenant_a) == start + 250
    ledger = client.get("/api/v1/credits/ledger/").json()["results"]
    assert [e["id"] for e in ledger].count(entry["id"]) == 1
    assert client.get("/api/v1/credits/").json()["balance"] == start + 250


def test_the_idempotency_key_header_works_too(tenant_a) -> None:
    client = _manager(tenant_a)
    start = _balance(tenant_a)
    for _ in range(2):
        response = client.post(
            "/api/v1/credits/add/", {"amount": 5}, format="json", HTTP_IDEMPOTENCY_KEY="topup-1"
        )
    assert response.status_code == 200
    assert _balance(tenant_a) == start + 5
    mismatch = client.post(
        "/api/v1/credits/add/",
        {"amount": 5, "idempotency_key": "a"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="b",
    )
    assert mismatch.status_code == 400
    # Without a key every call adds.
    client.post("/api/v1/credits/add/", {"amount": 1}, format="json")
    client.post("/api/v1/credits/add/", {"amount": 1}, format="json")
    assert _balance(tenant_a) == start + 7


def test_a_callers_key_never_collides_with_the_hubs_own(tenant_a) -> None:
    client = _manager(tenant_a)
    message_id = uuid.uuid4()
    client.post(
        "/api/v1/credits/add/",
        {"amount": 10, "idempotency_key": f"reply:{message_id}"},
        format="json",
    )
    with tenant_a.schema():
        before = credit_balance_get()
        debit = credit_debit(amount=3, reason="AI reply", idempotency_key=f"reply:{message_id}")
        assert debit.amount == -3
        assert credit_balance_get() == before - 3


def test_a_repeated_debit_is_the_first_one_even_once_the_credits_ran_short(tenant_a) -> None:
    with tenant_a.schema():
        CreditBalance.objects.filter(pk=1).update(balance=20)
        first = credit_debit(amount=6, reason="usage", idempotency_key="order-1")
        assert (first.amount, first.balance_after) == (-6, 14)
        assert credit_debit(amount=6, reason="usage", idempotency_key="order-1").pk == first.pk
        assert credit_balance_get() == 14
        credit_debit(amount=10, reason="usage", idempotency_key="order-2")
        # Four left, fewer than asked: a repeat is still the first debit, not a shortfall.
        with pytest.raises(InsufficientCredits):
            credit_debit(amount=6, reason="usage", idempotency_key="order-3")
        assert credit_debit(amount=6, reason="usage", idempotency_key="order-1").pk == first.pk
        assert credit_balance_get() == 4
        assert set(
            CreditLedgerEntry.objects.filter(idempotency_key__startswith="order-").values_list(
                "idempotency_key", flat=True
            )
        ) == {"order-1", "order-2"}


def test_ordinary_revoked_and_missing_keys_may_not_add_credits(tenant_a) -> None:
    start = _balance(tenant_a)
    refused = tenant_a.client().post("/api/v1/credits/add/", {"amount": 1000}, format="json")
    assert refused.status_code == 403
    error = error_of(refused)
    assert error["code"] == "permission_denied"
    assert "can_manage_credits" in error["message"]
    assert Client().post("/api/v1/credits/add/", {"amount": 1}).status_code == 401
    issued = api_key_issue(tenant=tenant_a.tenant, name="old")
    ApiKey.objects.filter(pk=issued.api_key.pk).update(can_manage_credits=True)
    api_key_revoke(api_key=ApiKey.objects.get(pk=issued.api_key.pk))
    revoked = APIClient()
    revoked.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw_key}")
    assert revoked.post("/api/v1/credits/add/", {"amount": 1}, format="json").status_code == 401
    assert _balance(tenant_a) == start


def test_a_key_adds_to_its_own_tenant_only(tenant_a, tenant_b) -> None:
    a_start, b_start = _balance(tenant_a), _balance(tenant_b)
    for info, amount in ((tenant_a, 11), (tenant_b, 22)):
        # The same idempotency key in two tenants is two top-ups.
        response = _manager(info).post(
            "/api/v1/credits/add/", {"amount": amount, "idempotency_key": "same"}, format="json"
        )
        assert response.status_code == 201
    assert (_balance(tenant_a), _balance(tenant_b)) == (a_start + 11, b_start + 22)
    with tenant_b.schema():
        assert not CreditLedgerEntry.objects.filter(amount=11).exists()


def test_the_platform_admin_flags_a_key_and_sets_the_tenants_prices(tenant_a) -> None:
    issued = api_key_issue(tenant=tenant_a.tenant, name="billing system")
    key = APIClient()
    key.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw_key}")
    assert key.post("/api/v1/credits/add/", {"amount": 5}, format="json").status_code == 403
    # A platform user (and session) lives in the public schema; the API call above left the
    # tenant's schema set on this process's connection.
    tenant_connection().set_schema_to_public()
    get_user_model().objects.create_superuser(username="platform", password="pw-platform-1")
    admin = Client()
    assert admin.login(username="platform", password="pw-platform-1")
    page = admin.get(f"/admin/tenants/apikey/{issued.api_key.pk}/change/")
    assert b"can_manage_credits" in page.content
    response = admin.post(
        f"/admin/tenants/apikey/{issued.api_key.pk}/change/",
        {"name": "billing system", "rate_limit_per_minute": "", "can_manage_credits": "on"},
    )
    assert response.status_code == 302, response.content[:3000]
    assert key.post("/api/v1/credits/add/", {"amount": 5}, format="json").status_code == 201
    tenant_page = admin.get(f"/admin/tenants/tenant/{tenant_a.tenant.pk}/change/")
    for field in (b"credits_per_reply", b"credits_per_1k_tokens", b"low_credits_threshold"):
        assert field in tenant_page.content


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"amount": 0},
        {"amount": -5},
        {"amount": "5"},
        {"amount": 2.5},
        {"amount": True},
        {"amount": 10_000_001},
        {"amount": 5, "reason": "x" * 201},
        {"amount": 5, "idempotency_key": "k" * 101},
        {"amount": 5, "balance": 1_000_000},
    ],
)
def test_bad_amounts_are_refused_and_nothing_changes(tenant_a, payload) -> None:
    start = _balance(tenant_a)
    response = _manager(tenant_a).post("/api/v1/credits/add/", payload, format="json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "validation_error"
    assert _balance(tenant_a) == start


def test_a_body_that_is_not_json_is_refused(tenant_a) -> None:
    response = _manager(tenant_a).post(
        "/api/v1/credits/add/", "amount=5", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415


# --- Prices --------------------------------------------------------------------------------


def test_the_platform_defaults_apply_until_a_tenant_has_its_own_prices(tenant_a, settings) -> None:
    settings.HUB_CREDITS_PER_REPLY = 1
    settings.HUB_CREDITS_PER_1K_TOKENS = 2
    with tenant_a.schema():
        assert credit_reply_price(tokens=1500) == 1 + 3
    Tenant.objects.filter(schema_name=tenant_a.slug).update(
        credits_per_reply=5, credits_per_1k_tokens=0, low_credits_threshold=7
    )
    with tenant_a.schema():
        assert credit_reply_price(tokens=1500) == 5
    shown = tenant_a.client().get("/api/v1/credits/").json()
    assert (
        shown["credits_per_reply"],
        shown["credits_per_1k_tokens"],
        shown["low_balance_threshold"],
    ) == (5, 0, 7)


def test_an_ai_reply_is_priced_at_the_tenants_own_rate(tenant_a, openai_fake) -> None:
    Tenant.objects.filter(schema_name=tenant_a.slug).update(
        credits_per_reply=3, credits_per_1k_tokens=10
    )
    with tenant_a.schema():
        agent = AgentFactory.create()
        channel = Channel.objects.create(kind=ChannelKind.WEBCHAT, name="c", agent=agent, config={})
        conversation = Conversation.objects.create(
            channel=channel, contact=Contact.objects.create(name="v")
        )
        message_receive(
            conversation=conversation,
            contact=conversation.contact,
            content={"type": "text", "text": "hello?"},
        )
        conversation_drain(conversation_id=conversation.pk)
        reply = Message.objects.get(conversation=conversation, sender_type="ai")
        # 3 per reply, and 30 tokens at 10 per thousand round up to 1.
        assert ReplyCharge.objects.get(message=reply).amount == 4


# --- Low balance ---------------------------------------------------------------------------


def test_falling_below_the_threshold_tells_operators_and_webhooks_once(
    tenant_a, receiver: Receiver, django_capture_on_commit_callbacks
) -> None:
    Tenant.objects.filter(schema_name=tenant_a.slug).update(low_credits_threshold=50)
    with tenant_a.schema():
        subscription = webhook_subscription_create(url=receiver.url, events=["credits.low"])
        balance = credit_balance_get()
        with django_capture_on_commit_callbacks(execute=True):
            credit_debit(amount=balance - 60, reason="usage", idempotency_key="d1")
        assert not Notification.objects.filter(kind="low_credits").exists()
        with django_capture_on_commit_callbacks(execute=True):
            credit_debit(amount=15, reason="usage", idempotency_key="d2")
            credit_debit(amount=5, reason="usage", idempotency_key="d3")
        (notification,) = Notification.objects.filter(kind="low_credits")
        assert notification.title == "Credits are running low"
        assert notification.body.startswith("45 credit(s) left, below the threshold of 50.")
        assert CreditBalance.objects.get().low_alerted_at is not None
        (delivery,) = WebhookDelivery.objects.filter(subscription=subscription)
        assert delivery.event == "credits.low"
        assert delivery.payload["balance"] == 45
        assert delivery.payload["threshold"] == 50
        webhook_delivery_attempt(delivery_id=delivery.pk)
        # A top-up above the threshold re-arms the alert; the next fall is told again.
        with django_capture_on_commit_callbacks(execute=True):
            credit_add(amount=100, reason="top-up")
            assert CreditBalance.objects.get().low_alerted_at is None
            credit_debit(amount=100, reason="usage", idempotency_key="d4")
        assert Notification.objects.filter(kind="low_credits").count() == 2
        assert WebhookDelivery.objects.filter(subscription=subscription).count() == 2
    (request, *_) = receiver.requests
    envelope = json.loads(request.body)
    assert envelope["event"] == "credits.low"
    assert envelope["tenant"] == tenant_a.slug
    assert envelope["data"]["balance"] == 45


def test_the_low_balance_alert_stays_in_its_tenant(tenant_a, tenant_b) -> None:
    Tenant.objects.filter(schema_name=tenant_a.slug).update(low_credits_threshold=10_000)
    with tenant_a.schema():
        credit_debit(amount=1, reason="usage", idempotency_key="x1")
        assert Notification.objects.filter(kind="low_credits").count() == 1
    with tenant_b.schema():
        assert not Notification.objects.filter(kind="low_credits").exists()


# --- The usage report ----------------------------------------------------------------------


def _reply(conversation: Conversation, amount: int, tokens: int, **charge: Any) -> ReplyCharge:
    message, _ = message_send(
        conversation=conversation, content={"type": "text", "text": "hi"}, sender_type="ai"
    )
    return ReplyCharge.objects.create(message=message, amount=amount, tokens=tokens, **charge)


def test_the_usage_report_shows_replies_and_credits_per_day_and_channel(
    tenant_a, tenant_b, client
) -> None:
    now = timezone.now()
    with tenant_a.schema():
        agent = AgentFactory.create()
        conversations = {}
        for name in ("Website", "WhatsApp line"):
            channel = Channel.objects.create(
                kind=ChannelKind.WEBCHAT, name=name, agent=agent, config={}
            )
            conversations[name] = Conversation.objects.create(
                channel=channel, contact=Contact.objects.create(name=name)
            )
        _reply(conversations["Website"], 2, 1200, charged_at=now)
        _reply(conversations["Website"], 1, 300, charged_at=now)
        _reply(conversations["WhatsApp line"], 4, 3000, unpaid=True)
        older = _reply(conversations["Website"], 7, 0, charged_at=now)
        ReplyCharge.objects.filter(pk=older.pk).update(created_at=now - datetime.timedelta(days=2))
        _reply(conversations["WhatsApp line"], 9, 0)
        client.force_login(UserFactory.create(username="billing_admin", is_superuser=True))
    with tenant_b.schema():
        b_agent = AgentFactory.create()
        b_channel = Channel.objects.create(
            kind=ChannelKind.WEBCHAT, name="B secret line", agent=b_agent, config={}
        )
        _reply(
            Conversation.objects.create(channel=b_channel, contact=Contact.objects.create()),
            99,
            0,
            charged_at=now,
        )
    base = f"/t/{tenant_a.slug}/admin/billing/creditledgerentry/"
    changelist = client.get(base)
    assert changelist.status_code == 200
    assert b"usage/" in changelist.content
    page = client.get(f"{base}usage/")
    assert page.status_code == 200
    usage = page.context["usage"]
    rows = {(row.day, row.channel): row for row in usage}
    today, two_days_ago = now.date(), (now - datetime.timedelta(days=2)).date()
    website = rows[(today, "Website")]
    assert (website.replies, website.tokens, website.credits, website.pending) == (2, 1500, 3, 0)
    whatsapp = rows[(today, "WhatsApp line")]
    assert (whatsapp.replies, whatsapp.credits, whatsapp.unpaid, whatsapp.pending) == (
        2,
        0,
        1,
        1,
    )
    assert rows[(two_days_ago, "Website")].credits == 7
    assert page.context["usage_totals"]["replies"] == 5
    html = page.content.decode()
    assert "WhatsApp line" in html
    assert "B secret line" not in html
    assert "Usage report" in html
    # Another period; an unknown one falls back to 30 days.
    assert client.get(f"{base}usage/", {"days": "7"}).context["days"] == 7
    assert client.get(f"{base}usage/", {"days": "abc"}).context["days"] == 30


def test_the_usage_report_is_for_signed_in_staff_only(tenant_a, client) -> None:
    url = f"/t/{tenant_a.slug}/admin/billing/creditledgerentry/usage/"
    response = client.get(url)
    assert response.status_code == 302
    assert "/login/" in response["Location"]
