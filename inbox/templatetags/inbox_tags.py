"""How the inbox shows people, times and message content."""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone

from conversations.content import MEDIA_TYPES
from conversations.models import Contact, Message

register = template.Library()


@register.filter
def initials(name: Any) -> str:
    words = [word for word in str(name or "").replace("@", " ").split() if word[:1].isalnum()]
    if not words:
        return "?"
    letters = words[0][0] + (words[-1][0] if len(words) > 1 else "")
    return letters.upper()


@register.filter
def hue(value: Any) -> int:
    """A stable colour per person, so the same customer always looks the same."""
    return zlib.crc32(str(value).encode()) % 360


@register.filter
def contact_name(contact: Contact | None) -> str:
    if contact is None:
        return "Unknown"
    if contact.erased_at:
        return "Erased contact"
    return contact.name or contact.email or contact.phone or f"Visitor {str(contact.pk)[:6]}"


@register.filter
def first_name(contact: Contact | None) -> str:
    """What a canned response's {{contact.name}} becomes: the first name, if there is one."""
    if contact is None or contact.erased_at or not contact.name.strip():
        return ""
    return contact.name.split()[0]


@register.filter
def short_time(value: datetime | None) -> str:
    """Today: 14:05; this week: Mon; older: 3 Mar. inbox.js rewrites it in the browser's zone."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    now = timezone.localtime()
    if local.date() == now.date():
        return local.strftime("%H:%M")
    if now - local < timedelta(days=6):
        return local.strftime("%a")
    return f"{local.day} {local.strftime('%b')}"


@register.filter
def preview(content: Any) -> str:
    """One line for a conversation list."""
    if not isinstance(content, dict):
        return ""
    kind = content.get("type")
    if kind == "text":
        return str(content.get("text", ""))
    if kind in MEDIA_TYPES:
        label = {"image": "Photo", "audio": "Voice message", "video": "Video"}.get(
            str(kind), "File"
        )
        detail = content.get("caption") or content.get("filename") or ""
        return f"{label}: {detail}" if detail else label
    if kind == "location":
        return f"Location: {content.get('name') or ''}".rstrip(": ")
    if kind in ("buttons", "list"):
        return str(content.get("text", ""))
    if kind == "reaction":
        return f"Reacted {content.get('emoji') or ''}".rstrip()
    return "Unsupported message"


@register.filter
def sender_label(message: Message | None) -> str:
    """Who wrote a message, as the thread and the list name them."""
    if message is None:
        return ""
    if message.sender_type == Message.SenderType.OPERATOR:
        operator = message.sender_operator
        return operator.display_name if operator else "Operator"
    if message.sender_type == Message.SenderType.AI:
        return "AI agent"
    if message.sender_type == Message.SenderType.SYSTEM:
        return "System"
    return contact_name(message.sender_contact) if message.sender_contact_id else "Customer"


@register.filter
def media_url(message: Message) -> str:
    """The file's URL: the stored attachment's, else the provider's if it is http(s). Anything
    else (`javascript:` …) comes from outside and is dropped."""
    attachments = list(message.attachments.all())
    if attachments:
        return str(attachments[0].file.url)
    url = str(message.content.get("url", "")) if isinstance(message.content, dict) else ""
    return url if url.startswith(("https://", "http://", "/")) and not url.startswith("//") else ""
