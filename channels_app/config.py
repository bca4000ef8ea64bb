"""A channel's `config` per kind (CONTRACT §4): which keys it needs, which it may have, and which
are secrets the API accepts but never shows again.

Every key is named here; anything else is refused with the key in the error, so a typo in a
credential name fails when the channel is saved, not when the first webhook is rejected.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator

from channels_app.models import ChannelKind
from hub.exceptions import ApplicationError

# Write-only in the API: accepted on create and update, never in a response.
SECRET_KEYS = frozenset(
    {
        "access_token",
        "app_secret",
        "verify_token",
        "bot_token",
        "secret_token",
        "signing_secret",
        "auth_token",
        "smtp_password",
        "imap_password",
    }
)

SECURITY_CHOICES = ("starttls", "ssl", "none")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
TELEGRAM_BOT_TOKEN = re.compile(r"^[0-9]{3,}:[A-Za-z0-9_-]{20,}$")
# Telegram refuses any other secret_token in setWebhook.
TELEGRAM_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
HEX_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
MAX_ORIGINS = 50

Check = Callable[[Any], Any]


class InvalidConfig(ApplicationError):
    default_code = "validation_error"
    default_detail = "The channel config is invalid."


class _Invalid(Exception):
    """One key's problem; collected into the error's details."""


def _text(limit: int = 255) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise _Invalid("Must be a non-empty string.")
        if len(value) > limit:
            raise _Invalid(f"At most {limit} characters.")
        return value

    return check


def _pattern(regex: re.Pattern[str], message: str) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not regex.match(value):
            raise _Invalid(message)
        return value

    return check


def _choice(*choices: str) -> Check:
    def check(value: Any) -> str:
        if value not in choices:
            raise _Invalid(f"Must be one of: {', '.join(choices)}.")
        return str(value)

    return check


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _Invalid("Must be a port number, 1 to 65535.")
    return value


def _email(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid("Must be an email address.")
    try:
        EmailValidator()(value)
    except DjangoValidationError:
        raise _Invalid("Must be an email address.") from None
    return value


def _http_url(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 1000:
        raise _Invalid("Must be an http(s) URL.")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _Invalid("Must be an http(s) URL.")
    return value


def _origin(value: Any) -> str:
    """`scheme://host[:port]`, as a browser sends it in `Origin`: no path, no trailing slash."""
    if not isinstance(value, str):
        raise _Invalid("Each origin must be a string like https://shop.example.com.")
    parts = urlsplit(value.rstrip("/"))
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username
    ):
        raise _Invalid(f"Not an origin (scheme://host[:port]): {value!r}.")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _origins(value: Any) -> list[str]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_ORIGINS:
        raise _Invalid(f"Must be a list of 1 to {MAX_ORIGINS} origins.")
    return list(dict.fromkeys(_origin(item) for item in value))


_phone = _pattern(E164, "Must be a phone number in E.164 form, like +4915112345678.")
_secret = _text(4096)


@dataclass(frozen=True)
class ConfigSpec:
    required: Mapping[str, Check]
    optional: Mapping[str, Check] = field(default_factory=dict)
    # Filled in when absent, so what is stored says which variant the channel is.
    defaults: Mapping[str, Any] = field(default_factory=dict)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("Must be true or false.")
    return value


def _rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1000:
        raise _Invalid("Must be a number of messages per second above 0 and at most 1000.")
    return float(value)


_META = {"access_token": _secret, "app_secret": _secret, "verify_token": _secret}
_TWILIO = {"account_sid": _text(64), "auth_token": _secret, "from_number": _phone}
_IMAP = {
    "imap_host": _text(),
    "imap_port": _port,
    "imap_username": _text(),
    "imap_password": _secret,
    "imap_security": _choice(*SECURITY_CHOICES),
    "imap_folder": _text(),
}
# Reading mail needs all three; port, security and folder have defaults (993, ssl, INBOX).
_IMAP_NEEDS = ("imap_host", "imap_username", "imap_password")

SPECS: dict[str, ConfigSpec] = {
    "whatsapp:meta": ConfigSpec(
        required={"phone_number_id": _text(64), **_META},
        optional={"provider": _choice("meta"), "business_account_id": _text(64)},
        defaults={"provider": "meta"},
    ),
    "whatsapp:twilio": ConfigSpec(
        required={"provider": _choice("twilio"), **_TWILIO},
    ),
    ChannelKind.INSTAGRAM: ConfigSpec(required={"instagram_account_id": _text(64), **_META}),
    ChannelKind.MESSENGER: ConfigSpec(required={"page_id": _text(64), **_META}),
    ChannelKind.TELEGRAM: ConfigSpec(
        required={
            "bot_token": _pattern(TELEGRAM_BOT_TOKEN, "Not a Telegram bot token (123456:ABC…)."),
            "secret_token": _pattern(
                TELEGRAM_SECRET_TOKEN, "1 to 256 characters of A-Z, a-z, 0-9, _ and -."
            ),
        }
    ),
    ChannelKind.SLACK: ConfigSpec(
        required={"bot_token": _secret, "signing_secret": _secret},
        # The bot's own ids, so its echoes are never taken for a contact's message.
        optional={"bot_user_id": _text(32), "bot_id": _text(32)},
    ),
    ChannelKind.SMS: ConfigSpec(
        required=_TWILIO,
        optional={"provider": _choice("twilio")},
        defaults={"provider": "twilio"},
    ),
    ChannelKind.EMAIL: ConfigSpec(
        required={
            "from_address": _email,
            "smtp_host": _text(),
            "smtp_port": _port,
            "smtp_security": _choice(*SECURITY_CHOICES),
        },
        # A relay that trusts the hub's address needs no login.
        optional={
            "from_name": _text(200),
            "smtp_username": _text(),
            "smtp_password": _secret,
            **_IMAP,
        },
    ),
    ChannelKind.SIGNAL: ConfigSpec(
        required={"api_url": _http_url, "number": _phone},
        # signal-cli signs nothing: its webhook is accepted only where the operator says so.
        optional={"accept_webhook": _boolean},
    ),
    ChannelKind.WEBCHAT: ConfigSpec(
        required={"allowed_origins": _origins},
        optional={
            "title": _text(100),
            "color": _pattern(HEX_COLOR, "Must be a hex colour like #2563eb."),
        },
    ),
    ChannelKind.API: ConfigSpec(required={}),
}

WHATSAPP_PROVIDERS = ("meta", "twilio")


def _spec_key(kind: str, config: Mapping[str, Any]) -> str:
    if kind != ChannelKind.WHATSAPP:
        return kind
    provider = config.get("provider", "meta")
    if provider not in WHATSAPP_PROVIDERS:
        raise InvalidConfig(
            details={"config.provider": [f"Must be one of: {', '.join(WHATSAPP_PROVIDERS)}."]}
        )
    return f"whatsapp:{provider}"


def config_validate(*, kind: str, config: Any) -> dict[str, Any]:
    """The config checked against its kind and normalised; every problem at once, each under
    `config.<key>`. Raises InvalidConfig (400)."""
    if not isinstance(config, dict):
        raise InvalidConfig(details={"config": ["Must be an object."]})
    spec = SPECS[_spec_key(kind, config)]
    errors: dict[str, list[str]] = {}
    result: dict[str, Any] = {}
    # Every provider channel may slow its sending below the provider's published rate.
    known = {**spec.required, "messages_per_second": _rate, **spec.optional}
    for key in sorted(set(config) - set(known)):
        errors[f"config.{key}"] = [f"Unknown field for a {kind} channel."]
    for key in spec.required:
        if config.get(key) is None:
            errors[f"config.{key}"] = ["This field is required."]
    if kind == ChannelKind.EMAIL and any(config.get(key) is not None for key in _IMAP):
        for key in _IMAP_NEEDS:
            if config.get(key) is None:
                errors[f"config.{key}"] = ["Required when reading mail over IMAP."]
    for key, check in known.items():
        value = config.get(key)
        if value is None or f"config.{key}" in errors:
            continue
        try:
            result[key] = check(value)
        except _Invalid as problem:
            errors[f"config.{key}"] = [str(problem)]
    if errors:
        raise InvalidConfig(details=errors)
    return {**spec.defaults, **result}


def config_merge(*, kind: str, current: Mapping[str, Any], changes: Any) -> dict[str, Any]:
    """A PATCH of config: the given keys replace the stored ones, `null` removes one, omitted
    keys (secrets included) are kept. Switching WhatsApp's provider starts from nothing, since
    the two share no credentials."""
    if not isinstance(changes, dict):
        raise InvalidConfig(details={"config": ["Must be an object."]})
    base = dict(current)
    switching = kind == ChannelKind.WHATSAPP and "provider" in changes
    if switching and (changes["provider"] or "meta") != current.get("provider", "meta"):
        base = {}
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return config_validate(kind=kind, config=base)


def config_public(config: Mapping[str, Any]) -> dict[str, Any]:
    """What the API shows: everything but the secrets."""
    return {key: value for key, value in config.items() if key not in SECRET_KEYS}


def config_secrets_set(config: Mapping[str, Any]) -> list[str]:
    """The names (never the values) of the secrets stored, so a client can tell one is set."""
    return sorted(key for key in config if key in SECRET_KEYS and config[key])
