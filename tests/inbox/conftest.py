"""Committed rows for the inbox's socket and browser tests (the ASGI server is another process,
so it only sees what the test commits), and an operator's signed-in session to go with them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from agents.models import Agent
from channels_app.models import Channel
from conversations.models import Contact, Conversation, Message, Operator, Participant
from conversations.services.messages import message_receive
from inbox.models import CannedResponse, Notification
from tests import support
from tests.conftest import TenantInfo
from tests.factories import ChannelFactory, ConversationFactory, OperatorFactory, UserFactory

PASSWORD = "correct horse battery staple"


@dataclass
class Seat:
    """A user of a tenant with a signed-in session (and an operator unless asked otherwise)."""

    tenant: TenantInfo
    username: str
    session: str
    operator_id: str | None

    @property
    def operator(self) -> str:
        """The operator's id, for seats that are operators."""
        assert self.operator_id is not None
        return self.operator_id

    @property
    def cookie(self) -> dict[str, str]:
        return {"Cookie": f"sessionid={self.session}"}


@dataclass
class Committed:
    """What a test committed, per schema, deleted again after it in dependency order."""

    tenants: dict[str, TenantInfo]
    made: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    # Notifications made during the test (by it, or by the hub in reaction) go afterwards.
    started: datetime = field(default_factory=timezone.now)

    @property
    def a(self) -> TenantInfo:
        return self.tenants["a"]

    @property
    def b(self) -> TenantInfo:
        return self.tenants["b"]

    def _keep(self, tenant: TenantInfo, kind: str, pk: Any) -> None:
        self.made.setdefault(tenant.slug, {}).setdefault(kind, []).append(pk)

    def seat(
        self, tenant: TenantInfo, name: str, *, operator: bool = True, staff: bool = True
    ) -> Seat:
        with tenant.schema():
            user = UserFactory.create(first_name=name, is_staff=staff)
            user.set_password(PASSWORD)
            user.save()
            self._keep(tenant, "user", user.pk)
            operator_id = None
            if operator:
                operator_id = str(OperatorFactory.create(user=user, display_name=name).pk)
                self._keep(tenant, "operator", operator_id)
            client = Client()
            client.force_login(user)
            session = client.cookies["sessionid"].value
            self._keep(tenant, "session", session)
        return Seat(tenant=tenant, username=user.username, session=session, operator_id=operator_id)

    def conversation(
        self, tenant: TenantInfo, *, text: str | None = "Hello there", ai: bool = True, **kw: Any
    ) -> Conversation:
        with tenant.schema():
            agent = Agent.objects.create(name="Helper") if ai else None
            if agent:
                self._keep(tenant, "agent", agent.pk)
            channel = ChannelFactory.create(agent=agent, config={"allowed_origins": ["*"]})
            self._keep(tenant, "channel", channel.pk)
            conversation = ConversationFactory.create(channel=channel, ai_active=ai, **kw)
            self._keep(tenant, "conversation", conversation.pk)
            self._keep(tenant, "contact", conversation.contact_id)
            if text:
                message_receive(
                    conversation=conversation,
                    contact=conversation.contact,
                    content={"type": "text", "text": text},
                )
            return conversation

    def canned(self, tenant: TenantInfo, shortcut: str, text: str) -> CannedResponse:
        with tenant.schema():
            canned = CannedResponse.objects.create(shortcut=shortcut, text=text)
            self._keep(tenant, "canned", canned.pk)
            return canned

    def cleanup(self) -> None:
        for info in self.tenants.values():
            made = self.made.get(info.slug)
            if not made:
                continue
            with info.schema():
                # Conversations the test's channels got from elsewhere (a widget) go as well.
                channels = made.get("channel", [])
                conversations = [
                    *made.get("conversation", []),
                    *Conversation.objects.filter(channel__in=channels).values_list("pk", flat=True),
                ]
                contacts = [
                    *made.get("contact", []),
                    *Conversation.objects.filter(pk__in=conversations).values_list(
                        "contact_id", flat=True
                    ),
                ]
                operators = made.get("operator", [])
                Notification.objects.filter(created_at__gte=self.started).delete()
                Notification.objects.filter(conversation__in=conversations).delete()
                Notification.objects.filter(operator__in=operators).delete()
                Conversation.objects.filter(pk__in=conversations).update(last_message=None)
                Message.objects.filter(conversation__in=conversations).delete()
                Participant.objects.filter(conversation__in=conversations).delete()
                Conversation.objects.filter(pk__in=conversations).delete()
                Contact.objects.filter(pk__in=contacts).delete()
                Channel.objects.filter(pk__in=channels).delete()
                Agent.objects.filter(pk__in=made.get("agent", [])).delete()
                CannedResponse.objects.filter(pk__in=made.get("canned", [])).delete()
                Operator.objects.filter(pk__in=operators).delete()
                Operator.objects.filter(user__in=made.get("user", [])).delete()
                Session.objects.filter(pk__in=made.get("session", [])).delete()
                User.objects.filter(pk__in=made.get("user", [])).delete()


@pytest.fixture
def committed(committed_db: dict[str, TenantInfo]) -> Iterator[Committed]:
    rows = Committed(tenants=committed_db)
    try:
        yield rows
    finally:
        rows.cleanup()


@pytest.fixture(scope="module")
def inbox_server(
    tenants: dict[str, TenantInfo], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One ASGI server (uvicorn) for a module's tests: they only need the test database."""
    path: Path = tmp_path_factory.mktemp("inbox-server")
    with support.asgi_server(path) as url:
        yield url
