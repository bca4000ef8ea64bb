"""Shapes of `routing-rules/`, `intents/` and `routing-decisions/`. The validators are the
models' own, so the API and the admin refuse the same things."""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

from channels_app.api.serializers import ChannelKindField
from hub.api import StrictSerializerMixin
from processing.models import (
    INTENT_NAME_PATTERN,
    ITEM_MAX_CHARS,
    LIST_MAX_ITEMS,
    RULE_PATTERN_MAX_LENGTH,
    Intent,
    RoutingDecision,
    RoutingRule,
    validate_channel_ids,
    validate_contact_attributes,
    validate_handler_name,
    validate_intent_names,
    validate_languages,
    validate_rule_pattern,
)
from processing.routing import RULE_FIELDS


def _phrases(help_text: str, *, max_chars: int = ITEM_MAX_CHARS) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=max_chars),
        max_length=LIST_MAX_ITEMS,
        required=False,
        help_text=help_text,
    )


class RoutingRuleSerializer(StrictSerializerMixin, serializers.ModelSerializer[RoutingRule]):
    channels = serializers.ListField(
        child=serializers.CharField(max_length=36),
        max_length=LIST_MAX_ITEMS,
        required=False,
        validators=[validate_channel_ids],
        help_text="Channel ids; the message's channel must be one of them.",
    )
    channel_kinds = serializers.ListField(
        child=ChannelKindField(),
        max_length=LIST_MAX_ITEMS,
        required=False,
        help_text="Channel kinds; the message's channel must be of one of them.",
    )
    intents = serializers.ListField(
        child=serializers.CharField(max_length=64),
        max_length=LIST_MAX_ITEMS,
        required=False,
        validators=[validate_intent_names],
        help_text="Intent names from `intents/`; the message's intent must be one of them, with "
        "a confidence of at least the agent's threshold and `min_confidence`.",
    )
    min_confidence = serializers.FloatField(
        min_value=0.0, max_value=1.0, required=False, allow_null=True
    )
    keywords = _phrases("Any of these words or phrases, whole, in any case.")
    pattern = serializers.CharField(
        max_length=RULE_PATTERN_MAX_LENGTH,
        required=False,
        allow_blank=True,
        validators=[validate_rule_pattern],
        help_text="A regular expression the message must contain (case-insensitive), at most "
        f"{RULE_PATTERN_MAX_LENGTH} characters, without nested repetition such as (a+)+.",
    )
    contact_attributes = serializers.DictField(
        required=False,
        validators=[validate_contact_attributes],
        help_text='Every one must equal the contact\'s attribute, e.g. {"plan": "vip"}.',
    )
    languages = serializers.ListField(
        child=serializers.CharField(max_length=20),
        max_length=LIST_MAX_ITEMS,
        required=False,
        validators=[validate_languages],
        help_text="The contact's language (else the one the intent call found): `pt` matches "
        "pt and pt-BR, `pt-BR` only pt-BR.",
    )
    handler = serializers.CharField(
        max_length=50,
        validators=[validate_handler_name],
        help_text="The handler that answers: `answer`, `handoff`, or another installed one "
        "(`qna`, `small_talk`, `feedback`, `reminder`, `task`, `assessment`).",
    )

    class Meta:
        model = RoutingRule
        fields = ["id", *RULE_FIELDS, "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class IntentSerializer(StrictSerializerMixin, serializers.ModelSerializer[Intent]):
    name = serializers.CharField(
        max_length=64,
        validators=[
            RegexValidator(
                INTENT_NAME_PATTERN,
                "Lowercase letters, digits and '_', starting with a letter (e.g. order_status).",
            )
        ],
        help_text="Unique in the tenant (a duplicate is a 409).",
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    examples = _phrases("Example messages, sent to the model with the catalogue.", max_chars=500)
    keywords = _phrases("Words or phrases that find this intent when no LLM is configured.")

    class Meta:
        model = Intent
        fields = ["id", "name", "description", "examples", "keywords", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class RoutingDecisionSerializer(serializers.ModelSerializer[RoutingDecision]):
    seq = serializers.IntegerField(source="message.seq", read_only=True)

    class Meta:
        model = RoutingDecision
        fields = [
            "id",
            "message",
            "conversation",
            "seq",
            "rule",
            "rule_name",
            "intent",
            "confidence",
            "intent_source",
            "sentiment",
            "language",
            "entities",
            "handler",
            "reason",
            "tokens",
            "created_at",
        ]
        read_only_fields = fields


class RoutingDecisionFilterSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    conversation = serializers.UUIDField(required=False)
    rule = serializers.UUIDField(required=False)
    handler = serializers.CharField(max_length=50, required=False)
    intent = serializers.CharField(max_length=64, required=False)
    reason = serializers.ChoiceField(choices=RoutingDecision.Reason.choices, required=False)
    cursor = serializers.CharField(required=False)
    page_size = serializers.IntegerField(required=False)
