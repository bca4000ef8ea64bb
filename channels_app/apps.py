from django.apps import AppConfig


class ChannelsAppConfig(AppConfig):
    name = "channels_app"
    label = "channels_app"
    verbose_name = "Channels"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from channels_app import jobs  # noqa: F401 - registers the periodic jobs
        from channels_app.models import Channel
        from hub.memo import memo_changed

        # Every process remembers a webhook's channel (hub/memo.py): a write makes them forget.
        post_save.connect(memo_changed, sender=Channel, dispatch_uid="memo-channel")
        post_delete.connect(memo_changed, sender=Channel, dispatch_uid="memo-d-channel")
