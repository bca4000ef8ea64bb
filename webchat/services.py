"""Writes of the web chat: visitor sessions, visitor messages (into the same pipeline as every
channel), read receipts and image uploads."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.files import File
from django.db import transaction
from rest_framework import status

from channels_app.models import Channel, ChannelKind
from conversations.content import InvalidContent, content_validate
from conversations.models import Attachment, Contact, ContactIdentity, Conversation, Message
from conversations.services.attachments import attachment_create
from conversations.services.contacts import contact_identify
from conversations.services.conversations import (
    conversation_open,
    conversation_reopen_for_contact,
    participant_mark_read,
)
from conversations.services.messages import message_create, message_status_update
from hub.exceptions import ApplicationError
from webchat.tokens import VisitorClaims, visitor_token_issue, visitor_token_read

# What a visitor may send: text (a typed message or a picked choice), an uploaded image, a place.
VISITOR_CONTENT_TYPES = ("text", "image", "location")
# The images a visitor may upload, told apart by their first bytes (never by the client's word).
IMAGE_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),
)
UNREAD_STATUSES = (Message.Status.PENDING, Message.Status.SENT, Message.Status.DELIVERED)


class UnsupportedImage(ApplicationError):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    default_code = "unsupported_media_type"
    default_detail = "Only PNG, JPEG, GIF and WebP images can be sent here."


@dataclass(frozen=True)
class VisitorSession:
    token: str
    claims: VisitorClaims
    conversation: Conversation
    returning: bool


def _new_visitor_id() -> str:
    return f"v_{secrets.token_urlsafe(18)}"


def _returning_visitor_id(
    previous_token: str | None, *, schema: str, channel: Channel
) -> str | None:
    claims = visitor_token_read(previous_token)
    if claims is None or claims.schema != schema or claims.channel_id != channel.pk:
        return None
    # An erased contact loses its identities: its old token starts a new visitor.
    known = ContactIdentity.objects.filter(
        channel_kind=ChannelKind.WEBCHAT, external_id=claims.visitor_id
    ).exists()
    return claims.visitor_id if known else None


@transaction.atomic
def visitor_session_start(
    *, channel: Channel, schema: str, previous_token: str | None = None, language: str = ""
) -> VisitorSession:
    """A session for a browser on the channel: a fresh signed token for the visitor and its
    conversation. A valid token of the same channel keeps its visitor (contact) and
    conversation; anything else (none, forged, expired, another channel's) starts a new
    visitor, with a contact named "Visitor XXXX" and an open conversation."""
    visitor_id = _returning_visitor_id(previous_token, schema=schema, channel=channel)
    returning = visitor_id is not None
    if visitor_id is None:
        visitor_id = _new_visitor_id()
    contact, _ = contact_identify(
        channel_kind=ChannelKind.WEBCHAT,
        external_id=visitor_id,
        name=f"Visitor {secrets.token_hex(2).upper()}",
        language=language,
    )
    conversation, _ = conversation_open(channel=channel, contact=contact)
    claims = VisitorClaims(
        schema=schema,
        channel_id=channel.pk,
        visitor_id=visitor_id,
        conversation_id=conversation.pk,
    )
    return VisitorSession(
        token=visitor_token_issue(claims),
        claims=claims,
        conversation=conversation,
        returning=returning,
    )


def _visitor_content(content: Any) -> dict[str, Any]:
    normalised, _ = content_validate(content)
    if normalised["type"] not in VISITOR_CONTENT_TYPES:
        raise InvalidContent(
            details={"content.type": [f"Must be one of: {', '.join(VISITOR_CONTENT_TYPES)}."]}
        )
    if normalised["type"] == "image" and set(normalised) & {"url", "media_id"}:
        # A link would make the team's browsers fetch whatever the visitor names.
        raise InvalidContent(
            details={"content.attachment_id": ["Upload the image first and name its id."]}
        )
    return normalised


def _attachment_to_link(conversation: Conversation, attachment_id: str) -> Attachment:
    try:
        uuid.UUID(attachment_id)
    except ValueError:
        attachment = None
    else:
        attachment = (
            Attachment.objects.select_for_update()
            .filter(conversation=conversation, pk=attachment_id, message__isnull=True)
            .first()
        )
    if attachment is None:
        raise InvalidContent(
            details={"content.attachment_id": ["No such unsent upload in this conversation."]}
        )
    return attachment


@transaction.atomic
def visitor_message_receive(
    *, conversation_id: uuid.UUID, contact_id: uuid.UUID, client_id: str, content: Any
) -> tuple[Message, bool]:
    """Stores a visitor's message as the contact's inbound message. Idempotent by `client_id`:
    a repeat returns the first message, stores and links nothing. An image names an upload of
    this conversation, which the message then owns. The `message.created` event after commit
    puts it into the processing pipeline, as for every channel. Raises InvalidContent (400)."""
    normalised = _visitor_content(content)
    conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
    existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
    if existing:
        return existing, False
    attachment = None
    if normalised["type"] == "image":
        attachment = _attachment_to_link(conversation, normalised["attachment_id"])
        normalised = {
            **normalised,
            "filename": normalised.get("filename") or attachment.filename,
            "mime_type": attachment.content_type,
        }
    contact = Contact.objects.get(pk=contact_id)
    message, created = message_create(
        conversation=conversation,
        direction=Message.Direction.IN,
        sender_type=Message.SenderType.CONTACT,
        sender_contact=contact,
        content=normalised,
        status=Message.Status.RECEIVED,
        client_id=client_id,
    )
    if created:
        if attachment is not None:
            attachment.message = message
            attachment.save(update_fields=["message"])
        conversation_reopen_for_contact(conversation=conversation)
    return message, created


@transaction.atomic
def visitor_mark_read(
    *, conversation_id: uuid.UUID, contact_id: uuid.UUID, seq: int
) -> tuple[int, bool]:
    """Moves the visitor's read position forward to `seq` (never back) and marks the team's
    messages it newly covers `read`, which is what their senders see. Returns the position and
    whether it moved."""
    conversation = Conversation.objects.get(pk=conversation_id)
    contact = Contact.objects.get(pk=contact_id)
    before = (
        conversation.participants.filter(contact=contact)
        .values_list("last_read_seq", flat=True)
        .first()
    ) or 0
    participant = participant_mark_read(conversation=conversation, seq=seq, contact=contact)
    position = participant.last_read_seq
    if position <= before:
        return position, False
    newly_read = Message.objects.filter(
        conversation=conversation,
        direction=Message.Direction.OUT,
        is_private=False,
        seq__gt=before,
        seq__lte=position,
        status__in=UNREAD_STATUSES,
    ).order_by("seq")
    for message in newly_read:
        message_status_update(message=message, status=Message.Status.READ)
    return position, True


def _sniffed_image_type(file: File[Any]) -> str | None:
    file.seek(0)
    head = file.read(16)
    file.seek(0)
    for signature, offset, content_type in IMAGE_SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            if content_type == "image/webp" and not head.startswith(b"RIFF"):
                continue
            return content_type
    return None


@transaction.atomic
def visitor_image_upload(
    *, conversation_id: uuid.UUID, file: File[Any], filename: str
) -> Attachment:
    """Stores an image a visitor uploads into its conversation, unlinked until a message names
    it. The type comes from the file's first bytes; anything but PNG, JPEG, GIF or WebP is a
    415, over the attachment limit a 413, and nothing is stored."""
    content_type = _sniffed_image_type(file)
    if content_type is None:
        raise UnsupportedImage()
    conversation = Conversation.objects.get(pk=conversation_id)
    return attachment_create(
        conversation=conversation, file=file, filename=filename, content_type=content_type
    )
