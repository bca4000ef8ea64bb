"""Messages and files at chosen ages, in a temporary MEDIA_ROOT."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile

from conversations.models import Attachment, Conversation, Message
from conversations.services.messages import message_receive


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    """Files land in a temporary MEDIA_ROOT, never in the shared var/."""
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def say(conversation: Conversation, text: str, *, at: datetime) -> Message:
    """A customer's message, created at `at`."""
    message, _ = message_receive(
        conversation=conversation,
        contact=conversation.contact,
        content={"type": "text", "text": text},
    )
    Message.objects.filter(pk=message.pk).update(created_at=at)
    message.refresh_from_db()
    return message


def attach(conversation: Conversation, *, message: Message | None, at: datetime) -> Attachment:
    """A file in the conversation, linked to `message` (or never sent), created at `at`."""
    attachment = Attachment(
        conversation=conversation,
        message=message,
        filename="scan.pdf",
        content_type="application/pdf",
        size=4,
    )
    attachment.file.save("scan.pdf", ContentFile(b"%PDF"), save=False)
    attachment.save()
    Attachment.objects.filter(pk=attachment.pk).update(created_at=at)
    return attachment


def days(n: float) -> timedelta:
    return timedelta(days=n)
