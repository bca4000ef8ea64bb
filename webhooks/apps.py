from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Outgoing webhooks"

    def ready(self) -> None:
        from hub.events import event_subscribe
        from webhooks import jobs  # noqa: F401 - registers the sweeper job
        from webhooks.services import webhook_event_subscriber

        event_subscribe(webhook_event_subscriber)
