"""Inbound media: the file a media message names at its provider (a WhatsApp media id, a Slack
`url_private`, a Twilio MediaUrl…) downloaded by a task into storage, as an Attachment of the
message, and named in its content (`attachment_id`, next to the `media_id` or `url` it keeps).

What cannot be fetched (over the size cap, gone at the provider, refused) is recorded in the
content instead, as `media_error: {"code", "message"}`, so operators and integrators see why
there is no file. Transient failures are retried by the task with backoff.
"""

from __future__ import annotations

import logging
import mimetypes
import uuid
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

from channels_app.providers import provider_for
from channels_app.providers.base import FetchedMedia
from conversations.content import MEDIA_TYPES
from conversations.events import message_payload
from conversations.models import Message
from conversations.services.attachments import attachment_create, attachment_max_bytes
from hub.events import event_publish
from hub.http import ProviderError, ResponseTooLarge

logger = logging.getLogger(__name__)

# Attempts (the first included) before a transiently failing fetch is recorded as failed. With
# the delivery backoff (2 s doubling) they span a few minutes: Meta's CDN links and Signal's
# stored attachments do not wait much longer.
MAX_ATTEMPTS = 8
MEDIA_ERROR = "media_error"


class MediaFetchDeferred(Exception):
    """A transient failure: nothing was stored; try again later."""

    def __init__(self, code: str, message: str, retry_after: float | None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after


def media_max_bytes() -> int:
    """The largest file fetched: HUB_MEDIA_MAX_BYTES, and never more than an attachment may be
    (HUB_ATTACHMENT_MAX_BYTES), since that is what it is stored as."""
    return min(int(settings.HUB_MEDIA_MAX_BYTES), attachment_max_bytes())


def media_needs_fetch(*, content: dict[str, Any]) -> bool:
    """A media message whose file is still at the provider, neither stored nor given up on."""
    return (
        content.get("type") in MEDIA_TYPES
        and not content.get("attachment_id")
        and MEDIA_ERROR not in content
        and bool(content.get("media_id") or content.get("url"))
    )


def media_fetch_enqueue(*, message_id: uuid.UUID | str) -> bool:
    """Hands a message's media to the workers. Never raises: with the broker down the message
    keeps its provider reference (media_id or url) and shows no file."""
    from channels_app.tasks import media_fetch_task

    try:
        media_fetch_task.delay(str(message_id))
    except (RedisError, BrokerError, OSError) as error:
        logger.warning(
            "broker unavailable; media not fetched",
            extra={"message_id": str(message_id), "error": type(error).__name__},
        )
        return False
    return True


def media_fetch(*, message_id: uuid.UUID | str) -> Message | None:
    """Downloads the media of one inbound message and stores it as the message's attachment.

    Idempotent: a message whose file is stored or recorded as failed is left alone, and the
    store re-checks under the message's row lock, so two runs store one file. The download
    holds no lock or transaction. A permanent failure (too large, gone, refused) is recorded
    in the content; a transient one raises MediaFetchDeferred with nothing stored.
    """
    message = Message.objects.select_related("channel").filter(pk=message_id).first()
    if message is None or message.deleted_at or not media_needs_fetch(content=message.content):
        return message
    channel = message.channel
    provider = provider_for(kind=channel.kind, config=channel.config)
    if provider is None:
        return media_fetch_failed(
            message_id=message.pk,
            code="no_media_fetch",
            reason=f"The hub cannot download {channel.kind} media.",
        )
    max_bytes = media_max_bytes()
    try:
        fetched = provider.fetch_media(
            content=message.content, config=channel.config, max_bytes=max_bytes
        )
    except ResponseTooLarge:
        return media_fetch_failed(
            message_id=message.pk,
            code="too_large",
            reason=f"The file is larger than the limit of {max_bytes} bytes; it was not kept.",
        )
    except ProviderError as error:
        if error.transient:
            raise MediaFetchDeferred(error.code, error.message, error.retry_after) from error
        return media_fetch_failed(message_id=message.pk, code=error.code, reason=error.message)
    if len(fetched.data) > max_bytes:  # an adapter that read past the cap: still not kept
        return media_fetch_failed(
            message_id=message.pk,
            code="too_large",
            reason=f"The file is larger than the limit of {max_bytes} bytes; it was not kept.",
        )
    return _media_store(message_id=message.pk, fetched=fetched)


def _filename(content: dict[str, Any], fetched: FetchedMedia, content_type: str) -> str:
    if fetched.filename:
        return fetched.filename
    extension = mimetypes.guess_extension(content_type) or ""
    return f"{content['type']}{extension}"


@transaction.atomic
def _media_store(*, message_id: uuid.UUID, fetched: FetchedMedia) -> Message | None:
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation")
        .filter(pk=message_id)
        .first()
    )
    if message is None or not media_needs_fetch(content=message.content):
        return message  # another run stored it while this one downloaded
    content_type = fetched.content_type.split(";")[0].strip()
    attachment = attachment_create(
        conversation=message.conversation,
        file=ContentFile(fetched.data),
        filename=_filename(message.content, fetched, content_type),
        content_type=content_type,
    )
    try:
        attachment.message = message
        attachment.save(update_fields=["message"])
        message.content = {
            **message.content,
            "attachment_id": str(attachment.pk),
            "mime_type": message.content.get("mime_type") or attachment.content_type,
        }
        message.save(update_fields=["content", "updated_at"])
    except Exception:
        attachment.file.delete(save=False)
        raise
    logger.info(
        "inbound media stored",
        extra={"message_id": str(message.pk), "size": attachment.size},
    )
    event_publish(name="message.updated", payload=message_payload(message))
    return message


@transaction.atomic
def media_fetch_failed(*, message_id: uuid.UUID | str, code: str, reason: str) -> Message | None:
    """Records why a message's media was not fetched, in its content (which keeps its media_id
    or url). Nothing is recorded over a file stored meanwhile."""
    message = Message.objects.select_for_update().filter(pk=message_id).first()
    if message is None or not media_needs_fetch(content=message.content):
        return message
    logger.warning("inbound media not fetched", extra={"message_id": str(message.pk), "code": code})
    message.content = {
        **message.content,
        MEDIA_ERROR: {"code": code[:100], "message": reason[:500]},
    }
    message.save(update_fields=["content", "updated_at"])
    event_publish(name="message.updated", payload=message_payload(message))
    return message
