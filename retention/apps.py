from django.apps import AppConfig


class RetentionConfig(AppConfig):
    name = "retention"
    verbose_name = "Data retention"

    def ready(self) -> None:
        from retention import jobs  # noqa: F401 - registers the retention job
