from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"

    def ready(self) -> None:
        from conversations import jobs  # noqa: F401 - registers the periodic jobs
        from conversations.live import on_event
        from hub.events import event_subscribe

        event_subscribe(on_event)
