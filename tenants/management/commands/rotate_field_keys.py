from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context

from hub.fields import TokenColumn, encrypted_fields_rotate
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret and every encrypted message body (and the rows that "
        "copy them) under the first key of HUB_FIELD_KEYS, in every schema. Put the new key "
        "first, run this, then drop the old key."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        models = [
            model
            for model in apps.get_models()
            if any(isinstance(f, TokenColumn) for f in model._meta.concrete_fields)
        ]
        total = 0
        for schema in Tenant.objects.values_list("schema_name", flat=True):
            with schema_context(schema):
                total += sum(encrypted_fields_rotate(model) for model in models)
        self.stdout.write(f"Re-encrypted {total} value(s).")
