from django.apps import AppConfig


class ExtractionConfig(AppConfig):
    name = "extraction"
    verbose_name = "Lead extraction"

    def ready(self) -> None:
        from extraction import jobs  # noqa: F401 - registers the dispatch job
