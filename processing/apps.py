from django.apps import AppConfig


class ProcessingConfig(AppConfig):
    name = "processing"
    verbose_name = "Message processing"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from channels_app.delivery import delivery_sent_subscribe
        from hub.events import event_subscribe
        from processing import jobs  # noqa: F401 - registers the periodic jobs
        from processing.models import Intent, RoutingRule
        from processing.routing import routing_memo_forget
        from processing.services import reply_charge_on_sent
        from processing.subscribers import on_message_event

        for model in (Intent, RoutingRule):
            post_save.connect(routing_memo_forget, sender=model, dispatch_uid=f"memo-{model}")
            post_delete.connect(routing_memo_forget, sender=model, dispatch_uid=f"memo-d-{model}")
        event_subscribe(on_message_event)
        delivery_sent_subscribe(reply_charge_on_sent)
