"""The API's shapes of contacts, conversations and messages (CONTRACT §4). Event payloads use
the same serializers, so an integrator sees one shape in responses and in webhooks."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from conversations.models import Attachment, Contact, ContactIdentity, Conversation, Message


class AttachmentOutputSerializer(serializers.ModelSerializer[Attachment]):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Attachment
        fields = ["id", "filename", "content_type", "size", "url"]

    def get_url(self, attachment: Attachment) -> str:
        return attachment.file.url


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
        return None if message.deleted_at else message.content

    def get_error(self, message: Message) -> dict[str, str] | None:
        if message.status != Message.Status.FAILED:
            return None
        return {"code": message.error_code, "message": message.error_message}

    def get_sender(self, message: Message) -> dict[str, Any] | None:
        if message.sender_operator_id:
            operator = message.sender_operator
            return {"type": "operator", "id": str(operator.pk), "name": operator.display_name}  # type: ignore[union-attr]
        if message.sender_contact_id:
            return {"type": "contact", "id": str(message.sender_contact_id)}
        return None


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


class ConversationOutputSerializer(ConversationEventSerializer):
    """With the caller's `unread_count` (annotated by `conversation_list`)."""

    unread_count = serializers.IntegerField(read_only=True, default=0)

    class Meta(ConversationEventSerializer.Meta):
        fields = [*ConversationEventSerializer.Meta.fields, "unread_count"]
