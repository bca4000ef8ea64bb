from __future__ import annotations

from typing import Any

from rest_framework import serializers

from automation.models import AssessmentFlow, AssessmentRun, CsatRating, Task
from conversations.models import Operator
from hub.api import StrictSerializerMixin

MAX_TRIGGERS = 50


class AssessmentFlowSerializer(StrictSerializerMixin, serializers.ModelSerializer[AssessmentFlow]):
    definition = serializers.JSONField(
        help_text="Questions, outcomes and messages; see docs/handlers.md for the format."
    )

    class Meta:
        model = AssessmentFlow
        fields = [
            "id",
            "key",
            "name",
            "description",
            "trigger_keywords",
            "definition",
            "enabled",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate_trigger_keywords(self, value: Any) -> list[str]:
        if (
            not isinstance(value, list)
            or len(value) > MAX_TRIGGERS
            or not all(isinstance(item, str) and 0 < len(item.strip()) <= 100 for item in value)
        ):
            raise serializers.ValidationError(
                f"A list of at most {MAX_TRIGGERS} words or phrases of 1 to 100 characters."
            )
        return value


class AssessmentRunSerializer(serializers.ModelSerializer[AssessmentRun]):
    answers = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = AssessmentRun
        fields = [
            "id",
            "flow",
            "conversation",
            "contact",
            "status",
            "progress",
            "answers",
            "score",
            "outcome",
            "started_at",
            "updated_at",
            "completed_at",
        ]

    def get_answers(self, run: AssessmentRun) -> dict[str, Any]:
        """Question id to the answer given (a skipped one is null)."""
        return {key: item.get("value") for key, item in run.answers.items()}

    def get_progress(self, run: AssessmentRun) -> dict[str, int]:
        return {"answered": len(run.answers), "total": len(run.definition.get("questions", []))}


class TaskSerializer(StrictSerializerMixin, serializers.ModelSerializer[Task]):
    assignee = serializers.PrimaryKeyRelatedField(
        queryset=Operator.objects.all(), allow_null=True, required=False
    )

    class Meta:
        model = Task
        fields = [
            "id",
            "title",
            "description",
            "status",
            "priority",
            "due_at",
            "assignee",
            "conversation",
            "contact",
            "completed_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "completed_at", "created_at", "updated_at"]


class TaskUpdateSerializer(TaskSerializer):
    class Meta(TaskSerializer.Meta):
        read_only_fields = [*TaskSerializer.Meta.read_only_fields, "conversation", "contact"]


class TaskFilterSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=Task.Status.choices, required=False)
    assignee = serializers.UUIDField(required=False)
    conversation = serializers.UUIDField(required=False)
    contact = serializers.UUIDField(required=False)


class CsatRatingSerializer(serializers.ModelSerializer[CsatRating]):
    class Meta:
        model = CsatRating
        fields = [
            "id",
            "conversation",
            "contact",
            "message",
            "rated_message",
            "score",
            "sentiment",
            "raw",
            "created_at",
        ]


class CsatFilterSerializer(serializers.Serializer[Any]):
    conversation = serializers.UUIDField(required=False)
    sentiment = serializers.ChoiceField(choices=CsatRating.Sentiment.choices, required=False)
    since = serializers.DateTimeField(required=False)


class CsatSummarySerializer(serializers.Serializer[Any]):
    count = serializers.IntegerField()
    average = serializers.FloatField(allow_null=True, help_text="Mean score, 1 to 5.")
    positive = serializers.IntegerField()
    neutral = serializers.IntegerField()
    negative = serializers.IntegerField()
