"""The provider registry: adding a provider is one module and one line here."""

from __future__ import annotations

from typing import Any

from channels_app.providers.base import Provider
from channels_app.providers.email import Email
from channels_app.providers.messenger import Instagram, Messenger
from channels_app.providers.meta import WhatsAppCloud
from channels_app.providers.signal import Signal
from channels_app.providers.slack import Slack
from channels_app.providers.telegram import Telegram
from channels_app.providers.twilio import Twilio, TwilioWhatsApp

PROVIDERS: dict[str, Provider] = {
    "whatsapp": WhatsAppCloud(),
    "messenger": Messenger(),
    "instagram": Instagram(),
    "telegram": Telegram(),
    "email": Email(),
    "signal": Signal(),
    "slack": Slack(),
    "sms": Twilio(),
    "whatsapp:twilio": TwilioWhatsApp(),
}


def provider_for(*, kind: str, config: dict[str, Any]) -> Provider | None:
    """The adapter of a channel: by its kind, or `<kind>:<provider>` when the kind has several
    (WhatsApp through Twilio)."""
    variant = config.get("provider")
    if variant and variant != "meta" and f"{kind}:{variant}" in PROVIDERS:
        return PROVIDERS[f"{kind}:{variant}"]
    return PROVIDERS.get(kind)
