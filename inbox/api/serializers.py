"""Shapes of `/api/v1/canned-responses/`."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from hub.api import StrictSerializerMixin
from inbox.models import CannedResponse

SHORTCUT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,49}$"
SHORTCUT_HELP = "Typed after `/` in the inbox composer: 1-50 of `a-z`, `0-9`, `-`, `_`."


class CannedResponseInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    shortcut = serializers.RegexField(
        SHORTCUT_PATTERN,
        max_length=50,
        help_text=SHORTCUT_HELP,
        error_messages={"invalid": "Use 1-50 lowercase letters, digits, '-' and '_'."},
    )
    text = serializers.CharField(
        max_length=4096,
        help_text="What is inserted. `{{contact.name}}` and `{{agent.name}}` are filled in.",
    )


class CannedResponseOutputSerializer(serializers.ModelSerializer[CannedResponse]):
    class Meta:
        model = CannedResponse
        fields = ["id", "shortcut", "text", "created_at", "updated_at"]
        read_only_fields = fields
