"""The API's shapes of extraction fields and extraction versions. `lead.extracted` webhooks
carry the same shape as `GET /api/v1/extractions/` lists."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from extraction.models import FIELD_NAME, Extraction, ExtractionField
from hub.api import StrictSerializerMixin


class ExtractionFieldOutputSerializer(serializers.ModelSerializer[ExtractionField]):
    class Meta:
        model = ExtractionField
        fields = [
            "id",
            "name",
            "type",
            "description",
            "required",
            "enum_values",
            "position",
            "created_at",
            "updated_at",
        ]


class ExtractionFieldInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    name = serializers.CharField(
        max_length=50,
        validators=[FIELD_NAME],
        help_text="The key in `data`: lowercase letters, digits, underscores.",
    )
    type = serializers.ChoiceField(choices=ExtractionField.Type.choices)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    required = serializers.BooleanField(required=False)  # type: ignore[assignment]
    enum_values = serializers.ListField(
        child=serializers.CharField(max_length=100),
        max_length=50,
        required=False,
        help_text="The allowed values; only (and always) for `enum`.",
    )
    position = serializers.IntegerField(min_value=0, max_value=32767, required=False)


class ExtractionOutputSerializer(serializers.ModelSerializer[Extraction]):
    channel = serializers.SerializerMethodField()
    missing = serializers.SerializerMethodField()

    class Meta:
        model = Extraction
        fields = [
            "id",
            "conversation",
            "contact",
            "channel",
            "version",
            "data",
            "confirmed",
            "missing",
            "dropped",
            "changes",
            "source",
            "trigger",
            "through_seq",
            "model",
            "tokens",
            "credits",
            "created_at",
        ]

    def get_channel(self, extraction: Extraction) -> str | None:
        """The conversation's channel id."""
        channel_id = getattr(extraction, "channel_id", None) or extraction.conversation.channel_id
        return str(channel_id) if channel_id else None

    def get_missing(self, extraction: Extraction) -> list[str]:
        """The required fields this version did not find."""
        required = self.context.get("required_fields")
        if required is None:
            from extraction.selectors import extraction_required_field_names

            # Read once per serializer (a list's rows share theirs).
            if not hasattr(self, "_required_fields"):
                self._required_fields = extraction_required_field_names()
            required = self._required_fields
        return [name for name in required if name not in extraction.data]


class ExtractionFilterSerializer(serializers.Serializer[Any]):
    created_after = serializers.DateTimeField(
        required=False, help_text="Created at or after (ISO 8601; percent-encode a `+`)."
    )
    created_before = serializers.DateTimeField(required=False, help_text="Created before.")
    channel = serializers.UUIDField(required=False, help_text="A channel id.")
    conversation = serializers.UUIDField(
        required=False, help_text="A conversation id: its history, newest version first."
    )
    field = serializers.CharField(
        max_length=50, required=False, help_text="Only versions that found this field."
    )
    q = serializers.CharField(
        max_length=200, required=False, help_text="Text contained in any found value."
    )
    format = serializers.ChoiceField(
        choices=["json", "csv", "jsonl"],
        required=False,
        help_text="`csv` or `jsonl` streams every matching version (no pagination).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        after, before = attrs.get("created_after"), attrs.get("created_before")
        if after and before and after >= before:
            raise serializers.ValidationError(
                {"created_before": ["Must be later than created_after."]}
            )
        return attrs
