from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from hub.exceptions import ApplicationError
from tenants.services import tenant_provision


class Command(BaseCommand):
    help = "Create a tenant, its schema and its first API key (CONTRACT §3)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The tenant's slug, which is also its schema name.")
        parser.add_argument("--name", required=True, help="The tenant's display name.")
        parser.add_argument("--credits", type=int, default=0, help="Credits granted at creation.")
        parser.add_argument("--domain", default=None, help="A host name that routes to it.")
        parser.add_argument("--json", action="store_true", help="Print one JSON line.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["credits"] < 0:
            raise CommandError("--credits cannot be negative.")
        try:
            provisioned = tenant_provision(
                slug=options["slug"],
                name=options["name"],
                credits=options["credits"],
                domain=options["domain"],
            )
        except ApplicationError as error:
            raise CommandError(str(error.detail)) from None
        slug = provisioned.tenant.schema_name
        result = {
            "slug": slug,
            "schema": slug,
            "api_key": provisioned.api_key,
            "admin_url": f"{settings.HUB_PUBLIC_URL}/{settings.HUB_TENANT_PREFIX}/{slug}/admin/",
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(f"Tenant {slug} created.")
            self.stdout.write(f"  API key (shown only now): {result['api_key']}")
            self.stdout.write(f"  Admin: {result['admin_url']}")
