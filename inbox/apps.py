from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "inbox"
    verbose_name = "Operator inbox"

    def ready(self) -> None:
        from inbox import jobs  # noqa: F401 - registers the presence sweep
