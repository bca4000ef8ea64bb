"""The canonical message content (CONTRACT §4): one shape for every channel, validated per type."""

from __future__ import annotations

from typing import Any

from hub.exceptions import ApplicationError

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_TITLE = 64
MAX_CHOICES = 10
MEDIA_TYPES = {"image", "audio", "video", "document"}
TYPES = {"text", "location", "buttons", "list", "reaction", "unsupported", *MEDIA_TYPES}


class InvalidContent(ApplicationError):
    default_code = "validation_error"
    default_detail = "The message content is invalid."


def _fail(field: str, message: str) -> InvalidContent:
    return InvalidContent(details={f"content.{field}": [message]})


def _string(content: dict[str, Any], key: str, *, required: bool, limit: int) -> str:
    value = content.get(key)
    if value is None or value == "":
        if required:
            raise _fail(key, "This field is required.")
        return ""
    if not isinstance(value, str):
        raise _fail(key, "Must be a string.")
    if len(value) > limit:
        raise _fail(key, f"At most {limit} characters.")
    return value


def _number(content: dict[str, Any], key: str, low: float, high: float) -> float:
    value = content.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(key, "Must be a number.")
    if not low <= value <= high:
        raise _fail(key, f"Must be between {low} and {high}.")
    return float(value)


def _choices(items: Any, field: str) -> list[dict[str, str]]:
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_CHOICES:
        raise _fail(field, f"Must be a list of 1 to {MAX_CHOICES} choices.")
    result = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _fail(f"{field}[{index}]", "Must be an object with id and title.")
        choice = {
            "id": _string(item, "id", required=True, limit=200),
            "title": _string(item, "title", required=True, limit=MAX_TITLE),
        }
        description = _string(item, "description", required=False, limit=200)
        if description:
            choice["description"] = description
        result.append(choice)
    return result


def content_validate(content: Any) -> tuple[dict[str, Any], str]:
    """Checks content against its type and returns it normalised, with the text search reads.

    Unknown keys are refused, so a typo never silently drops what the sender meant.
    """
    if not isinstance(content, dict):
        raise InvalidContent(details={"content": ["Must be an object with a type."]})
    kind = content.get("type")
    if kind not in TYPES:
        raise _fail("type", f"Must be one of: {', '.join(sorted(TYPES))}.")
    allowed: set[str]
    if kind == "text":
        # `choice`: the button or list row a contact picked; `reply_to`: the provider id of the
        # message answered; `edited`: the contact changed it after sending.
        allowed = {"type", "text", "choice", "reply_to", "edited"}
        text = _string(content, "text", required=True, limit=MAX_TEXT)
        normalised: dict[str, Any] = {"type": kind, "text": text}
        if content.get("choice") is not None:
            choice = content["choice"]
            if not isinstance(choice, dict):
                raise _fail("choice", "Must be an object with id and title.")
            normalised["choice"] = {
                "id": _string(choice, "id", required=True, limit=200),
                "title": _string(choice, "title", required=False, limit=200),
            }
        reply_to = _string(content, "reply_to", required=False, limit=255)
        if reply_to:
            normalised["reply_to"] = reply_to
        if content.get("edited") is True:
            normalised["edited"] = True
        searchable = text
    elif kind in MEDIA_TYPES:
        allowed = {
            "type",
            "url",
            "attachment_id",
            "caption",
            "filename",
            "mime_type",
            "media_id",
            "voice",
            "sticker",
            "media_error",
        }
        normalised = {"type": kind}
        for flag in ("voice", "sticker"):
            if content.get(flag) is True:
                normalised[flag] = True
        # Set by the hub when a provider's file could not be fetched (too large, expired).
        error = content.get("media_error")
        if error is not None:
            if not isinstance(error, dict) or not all(
                isinstance(error.get(key), str) for key in ("code", "message")
            ):
                raise _fail("media_error", "Must be an object with code and message.")
            normalised["media_error"] = {"code": error["code"], "message": error["message"]}
        for key, limit in (("url", 2000), ("attachment_id", 64), ("media_id", 255)):
            value = _string(content, key, required=False, limit=limit)
            if value:
                normalised[key] = value
        if not {"url", "attachment_id", "media_id"} & set(normalised):
            raise _fail("url", "A url, an attachment_id or a provider media_id is required.")
        for key, limit in (("caption", MAX_CAPTION), ("filename", 255), ("mime_type", 100)):
            value = _string(content, key, required=False, limit=limit)
            if value:
                normalised[key] = value
        searchable = " ".join(filter(None, [normalised.get("caption"), normalised.get("filename")]))
    elif kind == "location":
        allowed = {"type", "latitude", "longitude", "name", "address"}
        normalised = {
            "type": kind,
            "latitude": _number(content, "latitude", -90, 90),
            "longitude": _number(content, "longitude", -180, 180),
        }
        for key in ("name", "address"):
            value = _string(content, key, required=False, limit=500)
            if value:
                normalised[key] = value
        searchable = " ".join(filter(None, [normalised.get("name"), normalised.get("address")]))
    elif kind == "buttons":
        allowed = {"type", "text", "buttons"}
        text = _string(content, "text", required=True, limit=MAX_TEXT)
        buttons = _choices(content.get("buttons"), "buttons")
        normalised = {"type": kind, "text": text, "buttons": buttons}
        searchable = " ".join([text, *(b["title"] for b in buttons)])
    elif kind == "list":
        allowed = {"type", "text", "button", "sections"}
        text = _string(content, "text", required=True, limit=MAX_TEXT)
        button = _string(content, "button", required=False, limit=MAX_TITLE) or "Choose"
        sections = content.get("sections")
        if not isinstance(sections, list) or not 1 <= len(sections) <= MAX_CHOICES:
            raise _fail("sections", f"Must be a list of 1 to {MAX_CHOICES} sections.")
        normalised_sections = []
        for index, section in enumerate(sections):
            if not isinstance(section, dict):
                raise _fail(f"sections[{index}]", "Must be an object with rows.")
            item: dict[str, Any] = {
                "rows": _choices(section.get("rows"), f"sections[{index}].rows")
            }
            title = _string(section, "title", required=False, limit=MAX_TITLE)
            if title:
                item["title"] = title
            normalised_sections.append(item)
        normalised = {"type": kind, "text": text, "button": button, "sections": normalised_sections}
        searchable = text
    elif kind == "reaction":
        allowed = {"type", "emoji", "message_id"}
        normalised = {
            "type": kind,
            "emoji": _string(content, "emoji", required=False, limit=32),
            "message_id": _string(content, "message_id", required=True, limit=255),
        }
        searchable = ""
    else:
        allowed = {"type", "raw", "description"}
        normalised = {"type": kind, "raw": content.get("raw")}
        description = _string(content, "description", required=False, limit=500)
        if description:
            normalised["description"] = description
        searchable = description
    unknown = sorted(set(content) - allowed)
    if unknown:
        raise InvalidContent(details={f"content.{key}": ["Unknown field."] for key in unknown})
    return normalised, searchable
