"""Shapes of the web chat's HTTP endpoints (the visitor's side, called by widget.js)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from hub.api import StrictSerializerMixin


class VisitorSessionInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    visitor_token = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=1000,
        help_text="The token this browser was given before, to keep its visitor and "
        "conversation. Missing, expired or foreign: a new visitor starts.",
    )
    language = serializers.RegexField(
        r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$",
        required=False,
        allow_blank=True,
        help_text="The visitor's language (BCP 47, e.g. `de` or `pt-BR`), kept on a new contact.",
    )


class WebchatAppearanceSerializer(serializers.Serializer[Any]):
    title = serializers.CharField(help_text="The channel's `config.title`, else its name.")
    color = serializers.CharField(help_text="The channel's `config.color` (hex).")


class VisitorSessionOutputSerializer(WebchatAppearanceSerializer):
    visitor_token = serializers.CharField(
        help_text="Signed, expiring (`expires_in` seconds); sent again on the next session "
        "call, and on the socket."
    )
    conversation_id = serializers.UUIDField()
    ws_url = serializers.CharField(help_text="`/ws/webchat/?token=<visitor_token>`, on the hub.")
    expires_in = serializers.IntegerField()


class VisitorUploadInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    file = serializers.FileField()


class VisitorUploadOutputSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField(
        help_text='Name it in a message: `{"type": "image", "attachment_id": <id>}`.'
    )
    filename = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    url = serializers.CharField(help_text="A signed path on the hub that serves the file.")
