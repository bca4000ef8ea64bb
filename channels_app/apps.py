from django.apps import AppConfig


class ChannelsAppConfig(AppConfig):
    name = "channels_app"
    label = "channels_app"
    verbose_name = "Channels"

    def ready(self) -> None:
        from channels_app import jobs  # noqa: F401 - registers the periodic jobs
