"""Shapes of `/api/v1/webhooks/`: one input serializer per write, and outputs that never carry
the secret except the create response's."""

from __future__ import annotations

from rest_framework import serializers

from hub.api import StrictSerializerMixin
from webhooks.events import WEBHOOK_EVENTS
from webhooks.models import WebhookDelivery, WebhookSubscription
from webhooks.signing import SECRET_MIN_LENGTH


def _events_field(*, required: bool = True) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=list(WEBHOOK_EVENTS)),
        allow_empty=False,
        required=required,
        help_text="Events to receive: " + ", ".join(f"`{name}`" for name in WEBHOOK_EVENTS),
    )


class WebhookCreateInputSerializer(StrictSerializerMixin, serializers.Serializer[None]):
    url = serializers.CharField(
        max_length=2000,
        help_text="An http(s) URL that resolves to public addresses only.",
    )
    events = _events_field()
    secret = serializers.CharField(
        min_length=SECRET_MIN_LENGTH,
        max_length=255,
        required=False,
        trim_whitespace=False,
        help_text="The signing secret; generated when omitted. Returned only in this response.",
    )
    enabled = serializers.BooleanField(required=False, default=True)
    description = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default=""
    )


class WebhookUpdateInputSerializer(StrictSerializerMixin, serializers.Serializer[None]):
    url = serializers.CharField(max_length=2000, required=False)
    events = _events_field(required=False)
    secret = serializers.CharField(
        min_length=SECRET_MIN_LENGTH,
        max_length=255,
        required=False,
        trim_whitespace=False,
        help_text="A new signing secret (never echoed).",
    )
    enabled = serializers.BooleanField(required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)


class WebhookOutputSerializer(serializers.ModelSerializer[WebhookSubscription]):
    class Meta:
        model = WebhookSubscription
        fields = ["id", "url", "events", "enabled", "description", "created_at", "updated_at"]
        read_only_fields = fields


class WebhookCreatedSerializer(WebhookOutputSerializer):
    """The create response: the only time the secret is shown."""

    class Meta(WebhookOutputSerializer.Meta):
        fields = [*WebhookOutputSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookDeliveryOutputSerializer(serializers.ModelSerializer[WebhookDelivery]):
    attempts = serializers.IntegerField(source="attempt_count", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event",
            "event_id",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "first_attempt_at",
            "last_attempt_at",
            "next_attempt_at",
            "created_at",
        ]
        read_only_fields = fields


class _WebhookErrorBodySerializer(serializers.Serializer[None]):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class WebhookErrorSerializer(serializers.Serializer[None]):
    """The one error shape (CONTRACT §4), for the API docs."""

    error = _WebhookErrorBodySerializer()
