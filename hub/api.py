"""Small pieces every API view shares."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.request import Request

from hub.exceptions import ApplicationError


class StrictSerializerMixin:
    """Unknown fields are a 400 naming them, not silently dropped."""

    initial_data: Any
    fields: Any

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if isinstance(self.initial_data, dict):
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().validate(attrs)  # type: ignore[misc]


UUID_PATTERN = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


def require_json_object(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ApplicationError("The body must be a JSON object.", code="validation_error")
    return request.data
