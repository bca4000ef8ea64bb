from django.apps import AppConfig


class ProcessingConfig(AppConfig):
    name = "processing"
    verbose_name = "Message processing"

    def ready(self) -> None:
        from channels_app.delivery import delivery_sent_subscribe
        from hub.events import event_subscribe
        from processing import jobs  # noqa: F401 - registers the periodic jobs
        from processing.services import reply_charge_on_sent
        from processing.subscribers import on_message_event

        event_subscribe(on_message_event)
        delivery_sent_subscribe(reply_charge_on_sent)
