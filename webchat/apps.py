from django.apps import AppConfig


class WebchatConfig(AppConfig):
    name = "webchat"
    verbose_name = "Web chat"

    def ready(self) -> None:
        from webchat.logging import redaction_install

        redaction_install()
