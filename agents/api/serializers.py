from __future__ import annotations

from rest_framework import serializers

from agents.models import Agent
from hub.api import StrictSerializerMixin


class AgentSerializer(StrictSerializerMixin, serializers.ModelSerializer[Agent]):
    class Meta:
        model = Agent
        fields = [
            "id",
            "name",
            "instructions",
            "model",
            "prompt_id",
            "prompt_variables",
            "temperature",
            "language",
            "persona",
            "handoff_keywords",
            "handoff_confidence_threshold",
            "fallback_reply",
            "api_mode",
            "context_window_messages",
            "context_summary_every",
            "context_idle_reset_minutes",
            "handoff_on_negative_sentiment",
            "assignment_strategy",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_handoff_keywords(self, value: object) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise serializers.ValidationError("Must be a list of strings.")
        return value

    def validate_prompt_variables(self, value: object) -> dict[str, object]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be an object.")
        return value
