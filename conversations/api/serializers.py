"""The API's shapes of contacts, conversations and messages (CONTRACT §4). Event payloads use
the same serializers, so an integrator sees one shape in responses and in webhooks."""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, tzinfo
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers

from channels_app.api.serializers import ChannelKindField
from conversations.models import (
    Attachment,
    Contact,
    ContactIdentity,
    Conversation,
    Message,
    Operator,
    Participant,
)
from conversations.selectors import PREFETCHED_ATTACHMENTS
from hub.api import StrictSerializerMixin


class ApiErrorBodySerializer(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="Stable, snake_case, for programs.")
    message = serializers.CharField(help_text="For people.")
    details = serializers.DictField(
        child=serializers.JSONField(),
        help_text="For validation errors: each field's messages; otherwise often empty.",
    )


class ApiErrorSerializer(serializers.Serializer[Any]):
    """The one error shape of the API (CONTRACT §4), for the OpenAPI schema."""

    error = ApiErrorBodySerializer()


_ERROR_WHEN = {
    400: "Invalid input (`validation_error`, details name each field) or a refused operation.",
    401: "No, a malformed, unknown or revoked API key.",
    404: "No such resource in this tenant (another tenant's ids are not found either).",
    409: "The request conflicts with the current state.",
    413: "The upload is larger than the limit (`payload_too_large`).",
    415: "The body is not of a supported media type.",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """The documented errors of an endpoint; 401 always applies."""
    return {
        status: OpenApiResponse(ApiErrorSerializer, description=_ERROR_WHEN[status])
        for status in sorted({401, *statuses})
    }


# --- Outputs. Lists and event payloads build them for every row, so each output serializer
# builds its dict by hand rather than through DRF's per-field machinery (several times slower);
# the declared fields still define the shape (and the OpenAPI schema), and
# tests/conversations/test_output_shapes.py checks that the hand-built dicts equal DRF's own. ---


def _when(value: datetime | None, zone: tzinfo) -> str | None:
    """DRF's DateTimeField output: ISO 8601 in the current time zone, UTC as `Z`."""
    if value is None:
        return None
    text = value.astimezone(zone).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _attachment_output(attachment: Attachment) -> dict[str, Any]:
    return {
        "id": str(attachment.id),
        "filename": str(attachment.filename),
        "content_type": str(attachment.content_type),
        "size": int(attachment.size),
        "url": attachment.file.url,
    }


def _message_content(message: Message) -> dict[str, Any] | None:
    return None if message.deleted_at else message.content


def _message_error(message: Message) -> dict[str, str] | None:
    if message.status != Message.Status.FAILED:
        return None
    return {"code": message.error_code, "message": message.error_message}


def _message_sender(message: Message) -> dict[str, Any] | None:
    if message.sender_operator_id:
        operator = message.sender_operator
        return {"type": "operator", "id": str(operator.pk), "name": operator.display_name}  # type: ignore[union-attr]
    if message.sender_contact_id:
        return {"type": "contact", "id": str(message.sender_contact_id)}
    return None


def _message_attachments(message: Message) -> list[Attachment]:
    prefetched = getattr(message, PREFETCHED_ATTACHMENTS, None)
    return list(message.attachments.all()) if prefetched is None else prefetched


def _message_output(message: Message, zone: tzinfo) -> dict[str, Any]:
    return {
        "id": str(message.id),
        "conversation": message.conversation_id,
        "seq": int(message.seq),
        "direction": str(message.direction),
        "sender_type": str(message.sender_type),
        "sender": _message_sender(message),
        "content": _message_content(message),
        "status": str(message.status),
        "provider_message_id": str(message.provider_message_id),
        "client_id": str(message.client_id),
        "error": _message_error(message),
        "is_private": bool(message.is_private),
        "attachments": [_attachment_output(item) for item in _message_attachments(message)],
        "deleted_at": _when(message.deleted_at, zone),
        "created_at": _when(message.created_at, zone),
        "updated_at": _when(message.updated_at, zone),
    }


def _contact_summary(contact: Contact) -> dict[str, Any]:
    return {"id": str(contact.id), "name": str(contact.name), "avatar_url": str(contact.avatar_url)}


def _conversation_output(conversation: Conversation, zone: tzinfo) -> dict[str, Any]:
    contact = conversation.contact
    last_message = conversation.last_message
    return {
        "id": str(conversation.id),
        "channel": conversation.channel_id,
        "contact": None if contact is None else _contact_summary(contact),
        "type": str(conversation.type),
        "status": str(conversation.status),
        "snoozed_until": _when(conversation.snoozed_until, zone),
        "priority": int(conversation.priority),
        "assignee": conversation.assignee_id,
        "labels": [None if label is None else str(label) for label in conversation.labels],
        "ai_active": bool(conversation.ai_active),
        "provider_thread_id": str(conversation.provider_thread_id),
        "last_message": None if last_message is None else _message_output(last_message, zone),
        "last_activity_at": _when(conversation.last_activity_at, zone),
        "created_at": _when(conversation.created_at, zone),
        "updated_at": _when(conversation.updated_at, zone),
    }


class AttachmentOutputSerializer(serializers.ModelSerializer[Attachment]):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Attachment
        fields = ["id", "filename", "content_type", "size", "url"]

    def get_url(self, attachment: Attachment) -> str:
        return attachment.file.url

    def to_representation(self, instance: Attachment) -> dict[str, Any]:
        return _attachment_output(instance)


class MessageOutputSerializer(serializers.ModelSerializer[Message]):
    content = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    sender = serializers.SerializerMethodField()
    attachments = AttachmentOutputSerializer(many=True, read_only=True)

    class Meta:
        model = Message
        fields = [
            "id",
            "conversation",
            "seq",
            "direction",
            "sender_type",
            "sender",
            "content",
            "status",
            "provider_message_id",
            "client_id",
            "error",
            "is_private",
            "attachments",
            "deleted_at",
            "created_at",
            "updated_at",
        ]

    def get_content(self, message: Message) -> dict[str, Any] | None:
        return _message_content(message)

    def get_error(self, message: Message) -> dict[str, str] | None:
        return _message_error(message)

    def get_sender(self, message: Message) -> dict[str, Any] | None:
        return _message_sender(message)

    def to_representation(self, instance: Message) -> dict[str, Any]:
        return _message_output(instance, timezone.get_current_timezone())


class ContactIdentitySerializer(serializers.ModelSerializer[ContactIdentity]):
    class Meta:
        model = ContactIdentity
        fields = ["channel_kind", "external_id"]


class ContactOutputSerializer(serializers.ModelSerializer[Contact]):
    identities = ContactIdentitySerializer(many=True, read_only=True)

    class Meta:
        model = Contact
        fields = [
            "id",
            "name",
            "email",
            "phone",
            "avatar_url",
            "language",
            "attributes",
            "identities",
            "erased_at",
            "created_at",
            "updated_at",
        ]


class ContactSummarySerializer(serializers.ModelSerializer[Contact]):
    class Meta:
        model = Contact
        fields = ["id", "name", "avatar_url"]

    def to_representation(self, instance: Contact) -> dict[str, Any]:
        return _contact_summary(instance)


class ConversationEventSerializer(serializers.ModelSerializer[Conversation]):
    contact = ContactSummarySerializer(read_only=True)
    last_message = MessageOutputSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Conversation
        fields = [
            "id",
            "channel",
            "contact",
            "type",
            "status",
            "snoozed_until",
            "priority",
            "assignee",
            "labels",
            "ai_active",
            "provider_thread_id",
            "last_message",
            "last_activity_at",
            "created_at",
            "updated_at",
        ]

    def to_representation(self, instance: Conversation) -> dict[str, Any]:
        return _conversation_output(instance, timezone.get_current_timezone())


class ConversationOutputSerializer(ConversationEventSerializer):
    """With the caller's `unread_count` (annotated by the selectors that list for a reader)."""

    unread_count = serializers.IntegerField(read_only=True, default=0)

    class Meta(ConversationEventSerializer.Meta):
        fields = [*ConversationEventSerializer.Meta.fields, "unread_count"]

    def to_representation(self, instance: Conversation) -> dict[str, Any]:
        output = super().to_representation(instance)
        output["unread_count"] = int(getattr(instance, "unread_count", 0))
        return output


# --- Inputs. Unknown fields are a 400 naming them (StrictSerializerMixin). ---


@extend_schema_field(
    {
        "type": "string",
        "enum": Conversation.Status.values,
        "description": "`snoozed` wakes at `snoozed_until`; a contact's message reopens a "
        "resolved or snoozed conversation.",
    },
    component_name="ConversationStatus",
)
class ConversationStatusField(serializers.ChoiceField):
    """One named `ConversationStatus` in the schema for every input that takes one (a message
    has a `status` of its own)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Conversation.Status.choices, **kwargs)


E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
PHONE_PUNCTUATION = re.compile(r"[\s().-]")
LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
MAX_IDENTITIES = 50
MAX_ATTRIBUTES_BYTES = 16 * 1024


def _refuse_unknown(data: Any, fields: Any) -> None:
    # StrictSerializerMixin reads `initial_data`, which a nested serializer does not have.
    if isinstance(data, dict):
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})


class ContactIdentityInputSerializer(serializers.Serializer[Any]):
    channel_kind = ChannelKindField()
    external_id = serializers.CharField(
        max_length=255, help_text="The phone number, Telegram id, email or visitor id."
    )

    def to_internal_value(self, data: Any) -> Any:
        _refuse_unknown(data, self.fields)
        return super().to_internal_value(data)


class ContactInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    """Create and change. On a change, `identities` (when given) replaces the whole set."""

    name = serializers.CharField(max_length=200, allow_blank=True, required=False)
    email = serializers.EmailField(allow_blank=True, required=False)
    phone = serializers.CharField(
        max_length=32,
        allow_blank=True,
        required=False,
        help_text="E.164, like +4915112345678; spaces, dots, dashes and brackets are dropped.",
    )
    avatar_url = serializers.URLField(max_length=1000, allow_blank=True, required=False)
    language = serializers.CharField(
        max_length=20, allow_blank=True, required=False, help_text="e.g. en, pt-BR"
    )
    attributes = serializers.JSONField(
        required=False, help_text="Your own data about the contact: a JSON object."
    )
    identities = ContactIdentityInputSerializer(many=True, required=False)

    def validate_phone(self, value: str) -> str:
        phone = PHONE_PUNCTUATION.sub("", value)
        if phone and not E164.match(phone):
            raise serializers.ValidationError(
                "Must be a phone number in E.164 form, like +4915112345678."
            )
        return phone

    def validate_language(self, value: str) -> str:
        if value and not LANGUAGE_TAG.match(value):
            raise serializers.ValidationError("Must be a language tag, like en or pt-BR.")
        return value

    def validate_attributes(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be an object.")
        if len(json.dumps(value)) > MAX_ATTRIBUTES_BYTES:
            raise serializers.ValidationError(
                f"At most {MAX_ATTRIBUTES_BYTES} bytes once encoded as JSON."
            )
        return value

    def validate_identities(self, value: list[dict[str, str]]) -> list[tuple[str, str]]:
        if len(value) > MAX_IDENTITIES:
            raise serializers.ValidationError(f"At most {MAX_IDENTITIES} identities.")
        pairs = [(item["channel_kind"], item["external_id"]) for item in value]
        if len(set(pairs)) != len(pairs):
            raise serializers.ValidationError("The same identity is listed twice.")
        return pairs


class ContactMergeInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    # Shadows Field.source for the type checker only: the metaclass moves declared fields away.
    source = serializers.UUIDField(  # type: ignore[assignment]
        help_text="The contact merged into this one; it is deleted afterwards."
    )


class EmptyInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    """An action that takes no fields; any field sent is refused."""


class ContactListFilterSerializer(serializers.Serializer[Any]):
    q = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text="Part of the name or email, or at least 3 digits of the phone number.",
    )


class OperatorSummarySerializer(serializers.ModelSerializer[Operator]):
    class Meta:
        model = Operator
        fields = ["id", "display_name"]


class ConversationFilterSerializer(serializers.Serializer[Any]):
    status = ConversationStatusField(required=False, allow_blank=True)
    channel = serializers.UUIDField(required=False, help_text="A channel id.")
    assignee = serializers.CharField(
        required=False, help_text="An operator id, or `none` for the unassigned ones."
    )
    label = serializers.CharField(  # type: ignore[assignment]  # a field, not Field.label
        max_length=50, required=False, allow_blank=True
    )
    q = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text='Full-text search over the messages (words, "a phrase", -excluded, or).',
    )
    updated_after = serializers.DateTimeField(
        required=False,
        help_text="ISO 8601, e.g. 2025-01-31T12:00:00Z (percent-encode a `+` offset).",
    )

    def validate_assignee(self, value: str) -> str:
        if value != "none":
            try:
                uuid.UUID(value)
            except ValueError:
                raise serializers.ValidationError("Must be an operator id or `none`.") from None
        return value


class ConversationUpdateInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    status = ConversationStatusField(required=False)
    snoozed_until = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Required, in the future, to snooze."
    )
    priority = serializers.ChoiceField(choices=Conversation.Priority.choices, required=False)
    labels = serializers.ListField(
        child=serializers.CharField(max_length=50), max_length=50, required=False
    )
    assignee = serializers.PrimaryKeyRelatedField(
        queryset=Operator.objects.all(), allow_null=True, required=False
    )
    ai_active = serializers.BooleanField(required=False)


class ConversationReadInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    seq = serializers.IntegerField(
        min_value=0, required=False, help_text="Read up to this seq; default: the newest."
    )


class ConversationMuteInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    muted = serializers.BooleanField()


class ConversationAssignInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    operator = serializers.PrimaryKeyRelatedField(
        queryset=Operator.objects.all(), allow_null=True, help_text="null unassigns."
    )


class ConversationStatusInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    status = ConversationStatusField()
    snoozed_until = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Required, in the future, to snooze."
    )


class ReaderStateSerializer(serializers.Serializer[Any]):
    """The caller's (API key's) own position in a conversation."""

    conversation = serializers.UUIDField()
    last_read_seq = serializers.IntegerField()
    muted = serializers.BooleanField()
    unread_count = serializers.IntegerField()


class ParticipantInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    contact = serializers.PrimaryKeyRelatedField(queryset=Contact.objects.all(), required=False)
    operator = serializers.PrimaryKeyRelatedField(queryset=Operator.objects.all(), required=False)
    role = serializers.ChoiceField(
        choices=Participant.Role.choices,
        required=False,
        help_text="Default: member for a contact, agent for an operator.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if ("contact" in attrs) == ("operator" in attrs):
            message = "Give either a contact or an operator."
            raise serializers.ValidationError({"contact": [message], "operator": [message]})
        attrs.setdefault(
            "role", Participant.Role.MEMBER if "contact" in attrs else Participant.Role.AGENT
        )
        return attrs


class ParticipantOutputSerializer(serializers.ModelSerializer[Participant]):
    contact = ContactSummarySerializer(read_only=True, allow_null=True)
    operator = OperatorSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = Participant
        fields = ["id", "role", "contact", "operator", "last_read_seq", "muted", "joined_at"]


class MessageListFilterSerializer(serializers.Serializer[Any]):
    after_seq = serializers.IntegerField(
        min_value=0, required=False, help_text="Only messages with a greater seq."
    )


class MessageCreateInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    content = serializers.JSONField(
        help_text='Canonical content, e.g. {"type": "text", "text": "hi"}, or '
        '{"type": "image", "attachment_id": "<id of an upload>"}.'
    )
    client_id = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text="Your id for this message: a repeat returns the first message (200).",
    )
    is_private = serializers.BooleanField(
        default=False, help_text="An operators-only note, never delivered."
    )
    operator = serializers.PrimaryKeyRelatedField(
        queryset=Operator.objects.all(),
        allow_null=True,
        required=False,
        help_text="The operator sending it, if any.",
    )


class AttachmentUploadInputSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    file = serializers.FileField()
