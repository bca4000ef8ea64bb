"""Attachments: files uploaded into a conversation through Django's storage API, then linked by
the message whose content names them (`{"type": "image", "attachment_id": …}`)."""

from __future__ import annotations

import mimetypes
import os
import re
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.db import transaction
from django.utils.text import get_valid_filename
from rest_framework import status

from conversations.content import MEDIA_TYPES, InvalidContent, content_validate
from conversations.models import Attachment, Conversation, Message, Operator
from conversations.services.messages import message_send
from hub.exceptions import ApplicationError

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
MIME_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
# The content types whose media type a file must match; a document may be any file.
TYPED_MEDIA = ("image", "audio", "video")


class PayloadTooLarge(ApplicationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The file is larger than the limit."


def attachment_max_bytes() -> int:
    return int(getattr(settings, "HUB_ATTACHMENT_MAX_BYTES", 0) or DEFAULT_MAX_BYTES)


def attachment_too_large(*, size: int) -> PayloadTooLarge:
    limit = attachment_max_bytes()
    return PayloadTooLarge(
        f"The file is larger than the limit of {limit} bytes.",
        details={"max_bytes": limit, "size": size},
    )


def _clean_filename(name: str) -> str:
    # A client's name is only a hint: no directories, only characters safe in every storage.
    base = os.path.basename(name.replace("\\", "/")).strip()
    try:
        cleaned = get_valid_filename(base)
    except SuspiciousFileOperation:  # names like "..": not worth refusing the upload for
        cleaned = ""
    stem, extension = os.path.splitext(cleaned)
    return (stem[: 150 - len(extension[:20])] + extension[:20]) or "file"


def _content_type(declared: str, filename: str) -> str:
    declared = (declared or "").split(";")[0].strip().lower()
    if MIME_TYPE.match(declared) and declared != "application/octet-stream":
        return declared[:100]
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


@transaction.atomic
def attachment_create(
    *, conversation: Conversation, file: File[Any], filename: str, content_type: str = ""
) -> Attachment:
    """Stores an uploaded file in the conversation, not yet linked to a message. Over
    `HUB_ATTACHMENT_MAX_BYTES` (10 MiB by default) it is a 413 and nothing is stored. The file
    is written before the row; if the row cannot be written, the file is removed again."""
    size = file.size or 0
    if size > attachment_max_bytes():
        raise attachment_too_large(size=size)
    clean_name = _clean_filename(filename)
    attachment = Attachment(
        conversation=conversation,
        filename=clean_name,
        content_type=_content_type(content_type, clean_name),
        size=size,
    )
    attachment.file.save(clean_name, file, save=False)
    try:
        attachment.save()
    except Exception:
        attachment.file.delete(save=False)
        raise
    return attachment


def _fail(field: str, message: str) -> InvalidContent:
    return InvalidContent(details={f"content.{field}": [message]})


def _attachment_to_link(conversation: Conversation, kind: str, attachment_id: str) -> Attachment:
    attachment = (
        Attachment.objects.select_for_update()
        .filter(conversation=conversation, pk=attachment_id)
        .first()
        if _is_uuid(attachment_id)
        else None
    )
    if attachment is None:
        raise _fail("attachment_id", "No such attachment in this conversation.")
    if attachment.message_id is not None:
        raise _fail("attachment_id", "This attachment already belongs to another message.")
    if kind in TYPED_MEDIA and not attachment.content_type.startswith(f"{kind}/"):
        raise _fail(
            "type",
            f"An {kind} message needs a {kind}/* file; this one is {attachment.content_type}. "
            "Send it as a document instead.",
        )
    return attachment


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@transaction.atomic
def message_send_with_attachment(
    *,
    conversation: Conversation,
    content: Any,
    sender_type: str,
    sender_operator: Operator | None = None,
    client_id: str = "",
    is_private: bool = False,
) -> tuple[Message, bool]:
    """`message_send`, and when the content names an uploaded attachment of this conversation,
    links it to the new message (filling `filename` and `mime_type` from the file when the
    content leaves them out). An unknown, foreign or already linked attachment is a 400 naming
    `content.attachment_id`. Idempotent like `message_send`: a repeated `client_id` returns the
    first message and links nothing."""
    attachment_id = None
    if isinstance(content, dict) and content.get("type") in MEDIA_TYPES:
        attachment_id = content_validate(content)[0].get("attachment_id")
    if not attachment_id:
        return message_send(
            conversation=conversation,
            content=content,
            sender_type=sender_type,
            sender_operator=sender_operator,
            client_id=client_id,
            is_private=is_private,
        )
    # The conversation's lock (taken again by message_create, in this transaction) makes the
    # client_id check and the link one step for concurrent repeats.
    Conversation.objects.select_for_update().filter(pk=conversation.pk).first()
    if client_id:
        existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
        if existing:
            return existing, False
    attachment = _attachment_to_link(conversation, content["type"], attachment_id)
    content = {
        **content,
        "filename": content.get("filename") or attachment.filename,
        "mime_type": content.get("mime_type") or attachment.content_type,
    }
    return message_send(
        conversation=conversation,
        content=content,
        sender_type=sender_type,
        sender_operator=sender_operator,
        client_id=client_id,
        is_private=is_private,
        attachment=attachment,
    )
