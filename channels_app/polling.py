"""Channels the hub polls rather than being called by: email over IMAP, Signal through the
signal-cli REST API. Each fetched item goes into the same durable inbox as a webhook body
(`inbound_event_record`, keyed by the provider's id) and is processed by the same task, so a
mail fetched twice, or fetched and also posted to the webhook, becomes one message.

Run every minute per tenant by the `channels.poll_imap` and `channels.poll_signal` jobs.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import json
import logging
import re
import ssl
from typing import Any
from urllib.parse import quote

from django.conf import settings
from redis.exceptions import RedisError

from channels_app.inbound import inbound_event_enqueue, inbound_event_record
from channels_app.models import Channel, ChannelKind
from channels_app.providers.email import email_decode, email_event_id
from channels_app.providers.signal import signal_decode, signal_event_id
from channels_app.selectors import channels_polled
from hub.http import ProviderError, provider_request
from hub.redis import get_redis
from tenants.connection import tenant_connection

logger = logging.getLogger(__name__)

IMAP_DEFAULT_PORTS = {"ssl": 993, "starttls": 143, "none": 143}
# Mail fetched per channel and run; the rest waits for the next minute.
IMAP_BATCH = 50
# Above this a mail's body is not fetched (its headers are, so the contact still gets a
# conversation): the durable inbox stores whole mails, base64 for 8-bit ones.
IMAP_MAX_MESSAGE_BYTES = 25 * 1024 * 1024
FETCH_SIZE = re.compile(rb"UID (\d+) RFC822\.SIZE (\d+)|RFC822\.SIZE (\d+) UID (\d+)")
SIGNAL_RECEIVE_WAIT_SECONDS = 1


class ImapFailed(Exception):
    """The server refused a command (login, select, search, fetch)."""


# --- IMAP ------------------------------------------------------------------------------------


def _imap_state_key(channel: Channel) -> str:
    return f"hub:imap-state:{tenant_connection().schema_name}:{channel.pk}"


def _imap_state(channel: Channel) -> tuple[int, int] | None:
    """(UIDVALIDITY, last UID recorded), or None before the first poll."""
    raw = get_redis().get(_imap_state_key(channel))
    if not raw:
        return None
    state = json.loads(raw)
    return int(state["uidvalidity"]), int(state["last_uid"])


def _imap_state_save(channel: Channel, uidvalidity: int, last_uid: int) -> None:
    get_redis().set(
        _imap_state_key(channel), json.dumps({"uidvalidity": uidvalidity, "last_uid": last_uid})
    )


def _imap_connect(config: dict[str, Any]) -> imaplib.IMAP4:
    security = str(config.get("imap_security", "ssl"))
    host = str(config["imap_host"])
    port = int(config.get("imap_port") or IMAP_DEFAULT_PORTS.get(security, 993))
    timeout = settings.HUB_PROVIDER_TIMEOUT_SECONDS
    context = ssl.create_default_context()
    client: imaplib.IMAP4
    if security == "ssl":
        client = imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=timeout)
    else:
        client = imaplib.IMAP4(host, port, timeout=timeout)
        if security == "starttls":
            client.starttls(ssl_context=context)
    return client


def _ok(answer: tuple[str, list[Any]], what: str) -> list[Any]:
    kind, data = answer
    if kind != "OK":
        raise ImapFailed(f"{what}: {kind}")
    return data


def _quoted_mailbox(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _uids(data: list[Any]) -> list[int]:
    return sorted({int(uid) for chunk in data if chunk for uid in chunk.split()})


def _sizes(client: imaplib.IMAP4, uids: list[int]) -> dict[int, int]:
    data = _ok(client.uid("FETCH", ",".join(map(str, uids)), "(RFC822.SIZE)"), "fetch sizes")
    sizes: dict[int, int] = {}
    for line in data:
        text = line[0] if isinstance(line, tuple) else line
        match = FETCH_SIZE.search(text or b"")
        if match:
            if match.group(1):
                sizes[int(match.group(1))] = int(match.group(2))
            else:
                sizes[int(match.group(4))] = int(match.group(3))
    return sizes


def _fetch(client: imaplib.IMAP4, uid: int, *, headers_only: bool) -> bytes:
    item = "(BODY.PEEK[HEADER])" if headers_only else "(BODY.PEEK[])"
    for part in _ok(client.uid("FETCH", str(uid), item), "fetch"):
        if isinstance(part, tuple) and len(part) == 2:
            return bytes(part[1])
    raise ImapFailed(f"fetch: no body for UID {uid}")


def _stored_body(raw: bytes, omitted_size: int) -> tuple[bytes, str]:
    """The mail as the inbox stores it: raw MIME when it is text PostgreSQL can hold as is,
    else JSON with base64 (lossless for 8-bit mail)."""
    if not omitted_size and b"\x00" not in raw:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return raw, "message/rfc822"
    wrapped: dict[str, Any] = {"raw_base64": base64.b64encode(raw).decode()}
    if omitted_size:
        wrapped["omitted_size"] = omitted_size
    return json.dumps(wrapped).encode(), "application/json"


def _record_mail(channel: Channel, raw: bytes, omitted_size: int) -> bool:
    body, content_type = _stored_body(raw, omitted_size)
    try:
        event_id = email_event_id(email_decode(body))
    except ValueError:
        logger.info("unreadable mail skipped", extra={"channel_id": str(channel.pk)})
        return False
    event, created = inbound_event_record(
        channel=channel, provider_event_id=event_id, body=body, content_type=content_type
    )
    if created:
        inbound_event_enqueue(event_id=event.pk)
    return created


def imap_poll(*, channel: Channel) -> dict[str, int]:
    """Records the channel's new mail: UIDs above the last one recorded (per UIDVALIDITY, in
    Redis). The first poll, or one after the server renumbered the folder, takes the unseen
    mail. The folder is opened read-only: the hub never changes the mailbox. The last UID is
    saved after each mail is committed, so a crash re-fetches at most one mail, which the
    inbox recognises by its Message-ID. Raises ImapFailed or OSError."""
    config = channel.config
    folder = str(config.get("imap_folder") or "INBOX")
    state = _imap_state(channel)
    client = _imap_connect(config)
    recorded = fetched = 0
    try:
        _ok(client.login(str(config["imap_username"]), str(config["imap_password"])), "login")
        _ok(client.select(_quoted_mailbox(folder), readonly=True), "select")
        _, validity_data = client.response("UIDVALIDITY")
        uidvalidity = int(validity_data[0]) if validity_data and validity_data[0] else 0
        baseline = 0
        if state is None or state[0] != uidvalidity:
            # The mail already read in the mailbox is history, not new: only the unseen is
            # taken, and everything up to the newest UID counts as done.
            last_uid = 0
            uids = _uids(_ok(client.uid("SEARCH", "UNSEEN"), "search"))
            everything = _uids(_ok(client.uid("SEARCH", "ALL"), "search"))
            baseline = everything[-1] if everything else 0
        else:
            last_uid = state[1]
            found = _ok(client.uid("SEARCH", "UID", f"{last_uid + 1}:*"), "search")
            # `n:*` always matches the newest mail, even when its UID is below n.
            uids = [uid for uid in _uids(found) if uid > last_uid]
        batch = uids[:IMAP_BATCH]
        sizes = _sizes(client, batch) if batch else {}
        for uid in batch:
            size = sizes.get(uid, 0)
            too_large = size > IMAP_MAX_MESSAGE_BYTES
            raw = _fetch(client, uid, headers_only=too_large)
            fetched += 1
            recorded += _record_mail(channel, raw, size if too_large else 0)
            last_uid = max(last_uid, uid)
            _imap_state_save(channel, uidvalidity, last_uid)
        if len(uids) <= IMAP_BATCH and baseline > last_uid:
            last_uid = baseline
        if state != (uidvalidity, last_uid):
            _imap_state_save(channel, uidvalidity, last_uid)
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()
    return {"fetched": fetched, "recorded": recorded}


def imap_poll_channels() -> dict[str, int]:
    """Polls every enabled email channel with IMAP settings in the current tenant. A channel
    that fails (refused login, unreachable server) is logged and left for the next run; the
    others are still polled."""
    totals = {"channels": 0, "recorded": 0, "failed": 0}
    for channel in channels_polled(kind=ChannelKind.EMAIL):
        if not channel.config.get("imap_host"):
            continue
        totals["channels"] += 1
        try:
            totals["recorded"] += imap_poll(channel=channel)["recorded"]
        except (ImapFailed, imaplib.IMAP4.error, OSError, RedisError, ValueError) as error:
            totals["failed"] += 1
            logger.warning(
                "imap poll failed",
                extra={"channel_id": str(channel.pk), "error": type(error).__name__},
            )
    return totals


# --- Signal ----------------------------------------------------------------------------------


def signal_poll(*, channel: Channel) -> dict[str, int]:
    """Records what the signal-cli REST API holds for the channel's number
    (`GET /v1/receive/{number}`, normal or native mode). signal-cli forgets what it hands
    out, so each item is committed before the next; the inbox dedupes on (sender,
    timestamp). Raises ProviderError when the API fails."""
    config = channel.config
    api_url = str(config["api_url"]).rstrip("/")
    number = str(config["number"])
    response = provider_request(
        "GET",
        f"{api_url}/v1/receive/{quote(number, safe='+')}",
        params={"timeout": SIGNAL_RECEIVE_WAIT_SECONDS},
        timeout=settings.HUB_PROVIDER_TIMEOUT_SECONDS + SIGNAL_RECEIVE_WAIT_SECONDS,
    )
    if response.status_code != 200:
        raise ProviderError(
            code=str(response.status_code),
            message="The signal-cli REST API refused the receive request.",
            transient=response.status_code >= 500,
        )
    try:
        items = response.json()
    except ValueError as error:
        raise ProviderError(
            code="malformed_response", message="The receive answer is not JSON.", transient=True
        ) from error
    recorded = 0
    for item in items if isinstance(items, list) else []:
        body = json.dumps(item).encode()
        try:
            event_id = signal_event_id(signal_decode(body))
        except (ValueError, KeyError, TypeError):
            logger.info("unreadable signal item skipped", extra={"channel_id": str(channel.pk)})
            continue
        event, created = inbound_event_record(
            channel=channel, provider_event_id=event_id, body=body, content_type="application/json"
        )
        if created:
            inbound_event_enqueue(event_id=event.pk)
            recorded += 1
    return {"received": len(items) if isinstance(items, list) else 0, "recorded": recorded}


def signal_poll_channels() -> dict[str, int]:
    """Polls every enabled Signal channel of the current tenant, except those fed by the
    webhook (`accept_webhook`: the REST API runs in json-rpc mode, where /v1/receive is a
    websocket)."""
    totals = {"channels": 0, "recorded": 0, "failed": 0}
    for channel in channels_polled(kind=ChannelKind.SIGNAL):
        if channel.config.get("accept_webhook") is True:
            continue
        totals["channels"] += 1
        try:
            totals["recorded"] += signal_poll(channel=channel)["recorded"]
        except ProviderError as error:
            totals["failed"] += 1
            logger.warning(
                "signal poll failed", extra={"channel_id": str(channel.pk), "code": error.code}
            )
    return totals
