from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_delete, post_save

        from hub.db import timestamptz_loader_install
        from hub.memo import memo_changed
        from tenants.models import ApiKey, Domain, Tenant

        # Every process remembers these (hub/memo.py): a write makes them all forget.
        for model in (Tenant, Domain, ApiKey):
            post_save.connect(memo_changed, sender=model, dispatch_uid=f"memo-{model}")
            post_delete.connect(memo_changed, sender=model, dispatch_uid=f"memo-d-{model}")
        connection_created.connect(timestamptz_loader_install, dispatch_uid="timestamptz-loader")
