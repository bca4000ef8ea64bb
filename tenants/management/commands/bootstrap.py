from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django_tenants.utils import schema_context

from agents.models import Agent
from channels_app.models import Channel, ChannelKind
from jobs.schedules import schedules_ensure
from tenants.models import Tenant
from tenants.services import tenant_provision, tenant_template_ensure

DEMO_SLUG = "demo"
DEMO_CREDITS = 1000
ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = (
        "Deploy-time setup: the tenant template and the periodic jobs. With --demo (what `make "
        "run` does) also the demo tenant (web chat, an AI agent, credits) and a local superuser. "
        "Safe to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--demo", action="store_true", help="Also create the demo tenant.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant_template_ensure()
        schedules_ensure()
        if options["demo"]:
            self._demo()

    def _demo(self) -> None:
        password = secrets.token_urlsafe(12)
        if not Tenant.objects.filter(schema_name=DEMO_SLUG).exists():
            provisioned = tenant_provision(slug=DEMO_SLUG, name="Demo", credits=DEMO_CREDITS)
            self.stdout.write(
                f"hub: demo tenant created; its API key (shown once): {provisioned.api_key}"
            )
        created_for: list[str] = []
        with schema_context(DEMO_SLUG):
            self._demo_content()
            if self._superuser(password):
                created_for.append(f"{settings.HUB_PUBLIC_URL}/t/{DEMO_SLUG}/admin/")
        if self._superuser(password):
            created_for.append(f"{settings.HUB_PUBLIC_URL}/admin/")
        if created_for:
            self.stdout.write(
                f"hub: superuser '{ADMIN_USERNAME}', password '{password}' (shown once), for "
                + " and ".join(created_for)
            )

    @transaction.atomic
    def _demo_content(self) -> None:
        if Channel.objects.filter(kind=ChannelKind.WEBCHAT).exists():
            return
        agent = Agent.objects.create(
            name="Demo assistant",
            instructions=(
                "You are the friendly assistant of a demo shop. Answer briefly and hand over to "
                "a person when asked."
            ),
        )
        Channel.objects.create(
            kind=ChannelKind.WEBCHAT,
            name="Website chat",
            agent=agent,
            config={
                "allowed_origins": [settings.HUB_PUBLIC_URL],
                "title": "Chat with us",
                "color": "#2563eb",
            },
        )

    @staticmethod
    def _superuser(password: str) -> bool:
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            return False
        users.create_superuser(username=ADMIN_USERNAME, email="", password=password)
        return True
