"""The API's shapes of channels (CONTRACT §4). `config` is validated per kind by the service
(channels_app.config); here it only has to be an object. Secrets never leave through these."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agents.models import Agent
from channels_app.config import config_public, config_secrets_set
from channels_app.models import Channel, ChannelKind
from hub.api import StrictSerializerMixin

CONFIG_HELP = (
    "The kind's settings and credentials (see the integrator docs for each kind). Secrets "
    "(access_token, app_secret, verify_token, bot_token, secret_token, signing_secret, "
    "auth_token, smtp_password, imap_password) are write-only."
)


@extend_schema_field(
    {"type": "string", "enum": ChannelKind.values, "description": "The kind of channel."},
    component_name="ChannelKind",
)
class ChannelKindField(serializers.ChoiceField):
    """One named `ChannelKind` in the schema wherever a channel kind is, whatever the field's
    name (`kind`, `channel_kind`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=ChannelKind.choices, **kwargs)


def _config_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise serializers.ValidationError("Must be an object.")
    return value


class ChannelCreateInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    kind = ChannelKindField()
    name = serializers.CharField(max_length=200)
    config = serializers.JSONField(default=dict, help_text=CONFIG_HELP)
    agent = serializers.PrimaryKeyRelatedField(
        queryset=Agent.objects.all(), allow_null=True, required=False
    )
    enabled = serializers.BooleanField(default=True)

    def validate_config(self, value: Any) -> dict[str, Any]:
        return _config_object(value)


class ChannelUpdateInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    """`kind` may be sent (a client echoing the channel back) but not changed."""

    kind = ChannelKindField(required=False)
    name = serializers.CharField(max_length=200, required=False)
    config = serializers.JSONField(
        required=False,
        help_text=CONFIG_HELP + " Merged into the stored config; null removes a key.",
    )
    agent = serializers.PrimaryKeyRelatedField(
        queryset=Agent.objects.all(), allow_null=True, required=False
    )
    enabled = serializers.BooleanField(required=False)

    def validate_kind(self, value: str) -> str:
        if value != self.context["channel"].kind:
            raise serializers.ValidationError(
                "A channel's kind cannot be changed; create a new channel instead."
            )
        return value

    def validate_config(self, value: Any) -> dict[str, Any]:
        return _config_object(value)


class ChannelOutputSerializer(serializers.ModelSerializer[Channel]):
    """Needs `tenant_slug` in its context for `webhook_url`."""

    kind = ChannelKindField(read_only=True)
    webhook_url = serializers.SerializerMethodField()
    config = serializers.SerializerMethodField()
    secrets_set = serializers.SerializerMethodField()

    class Meta:
        model = Channel
        fields = [
            "id",
            "kind",
            "name",
            "agent",
            "enabled",
            "channel_token",
            "webhook_url",
            "config",
            "secrets_set",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(OpenApiTypes.URI)
    def get_webhook_url(self, channel: Channel) -> str:
        return channel.webhook_url(tenant_slug=self.context["tenant_slug"])

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_config(self, channel: Channel) -> dict[str, Any]:
        return config_public(channel.config or {})

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_secrets_set(self, channel: Channel) -> list[str]:
        return config_secrets_set(channel.config or {})
