"""Email: out over SMTP, in through a raw-MIME webhook or IMAP polling (channels_app.polling).

Email has no provider signature. The webhook URL's channel token is the only secret: an MTA pipe
or relay that knows the URL may post mail, anyone else gets a 404 (CONTRACT §5). `verify()`
therefore only checks that the request is well formed.

Threading. One email thread is one hub conversation: its `provider_thread_id` is the thread's
root Message-ID (the first of References, else In-Reply-To, else the mail's own Message-ID).
Every message's provider id is its Message-ID (`<…>`, as in the header), and an outbound mail
gets `<hub.<message id>@<from domain>>`, so a reply's References name ids the hub already holds.

Subject. Content has no subject field, so the subject stays where it came from: the raw mail in
the durable inbox (InboundEvent, keyed by the Message-ID). A reply reads the subject of the
latest inbound mail of its conversation and answers `Re: <subject>`. The mail that starts a
thread also carries its subject as the first line of its text, for operators and the agent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import json
import logging
import mimetypes
import re
import smtplib
import ssl
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses
from html.parser import HTMLParser
from typing import Any

import nh3
from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from channels_app.providers.base import (
    InboundEventPart,
    InboundFile,
    InboundMessage,
    OutboundMessage,
    Provider,
    RateLimit,
    SendResult,
    StatusUpdate,
    content_as_text,
)
from conversations.content import MAX_CAPTION, MAX_TEXT
from hub.http import ProviderError

logger = logging.getLogger(__name__)

# Message-IDs longer than this are replaced by their hash (provider ids hold 255 characters).
MAX_ID_LENGTH = 240
# References carried on a reply: the root and the most recent ones (RFC 5322 §3.6.4 allows
# trimming; mail clients do the same to keep headers short).
MAX_REFERENCES = 20
SMTP_DEFAULT_PORTS = {"ssl": 465, "starttls": 587, "none": 25}
MESSAGE_ID = re.compile(r"<[^<>\s]+>")
HUB_MESSAGE_ID = re.compile(r"^<hub\.([0-9a-f-]{36})@[^<>\s]+>$")
REPLY_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg|sv|vs|antw|réf|rif|tr)\s*(\[\d+\])?\s*:\s*)+", re.I)
# Mail that must not get an automatic answer (RFC 3834 §2): out-of-office notes, bulk mail.
AUTOMATED_PRECEDENCE = {"bulk", "junk", "auto_reply"}
SIGNATURE_TYPES = {"application/pgp-signature", "application/pkcs7-signature"}


@dataclass(frozen=True)
class RawEmail:
    """A decoded inbound mail. `omitted_size` is set when the poller fetched only the headers
    of a mail over its size limit."""

    raw: bytes
    message: EmailMessage
    omitted_size: int = 0


# --- Inbound ---------------------------------------------------------------------------------


def email_decode(body: bytes) -> RawEmail:
    """The stored body as a mail: raw MIME (`message/rfc822`), or JSON `{"raw": "<mime>"}` /
    `{"raw_base64": "…"}` (lossless for 8-bit mail; what the IMAP poller stores). Raises
    ValueError for anything that is not a mail with a sender."""
    omitted = 0
    if body.lstrip()[:1] == b"{":
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("the body is not a JSON object")
        if isinstance(payload.get("raw_base64"), str):
            try:
                raw = base64.b64decode(payload["raw_base64"], validate=True)
            except binascii.Error as error:
                raise ValueError("raw_base64 is not base64") from error
        elif isinstance(payload.get("raw"), str):
            raw = payload["raw"].encode("utf-8", errors="surrogateescape")
        else:
            raise ValueError("expected raw or raw_base64")
        omitted = int(payload.get("omitted_size") or 0)
    else:
        raw = body
    if not raw.strip():
        raise ValueError("empty mail")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    if not isinstance(message, EmailMessage) or not _sender(message)[0]:
        raise ValueError("the mail has no From address")
    return RawEmail(raw=raw, message=message, omitted_size=omitted)


def email_event_id(mail: RawEmail) -> str:
    """The Message-ID, so the same mail through the webhook and IMAP is processed once."""
    return _message_id(mail.message) or _hashed(mail.raw)


def _hashed(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _header(message: EmailMessage, name: str) -> str:
    """A header's value on one line; a header the parser chokes on is read raw."""
    try:
        value = str(message.get(name) or "")
    except (ValueError, IndexError, TypeError, AttributeError):
        value = next((str(v) for k, v in message.raw_items() if k.lower() == name.lower()), "")
    return " ".join(value.split())


def _ids(value: str) -> list[str]:
    return MESSAGE_ID.findall(value)


def _provider_id(message_id: str) -> str:
    return message_id if len(message_id) <= MAX_ID_LENGTH else _hashed(message_id.encode())


def _message_id(message: EmailMessage) -> str:
    ids = _ids(_header(message, "Message-ID"))
    return _provider_id(ids[0]) if ids else ""


def _sender(message: EmailMessage) -> tuple[str, str]:
    """(lowercased address, display name) of From."""
    try:
        header = message["From"]
        addresses = getattr(header, "addresses", ())
        if addresses and addresses[0].addr_spec and "@" in addresses[0].addr_spec:
            address = addresses[0]
            return address.addr_spec.lower(), str(address.display_name or "")
    except (ValueError, IndexError, TypeError):
        pass
    found = getaddresses([_header(message, "From")])
    name, address = found[0] if found else ("", "")
    return (address.lower(), name) if "@" in address else ("", "")


def _thread_root(message: EmailMessage, own_id: str) -> str:
    references = _ids(_header(message, "References")) or _ids(_header(message, "In-Reply-To"))
    return _provider_id(references[0]) if references else own_id


def _is_automated(message: EmailMessage) -> bool:
    auto = _header(message, "Auto-Submitted").lower()
    precedence = _header(message, "Precedence").lower()
    return (bool(auto) and auto != "no") or precedence in AUTOMATED_PRECEDENCE


class _TextExtractor(HTMLParser):
    """Sanitised HTML reduced to text: blocks on their own lines, list items dashed, quotes
    prefixed with `>` (so quoted replies are trimmed like plain text), links kept as URLs."""

    # Blocks set off by a blank line, and those that only start a new line.
    PARAGRAPHS = {
        "p", "ul", "ol", "dl", "table", "pre", "blockquote", "hr", "h1", "h2", "h3", "h4", "h5",
        "h6",
    }  # fmt: skip
    LINES = {"div", "section", "article", "header", "footer", "tr", "li", "dt", "dd"}
    BLOCKS = PARAGRAPHS | LINES

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.quote_depth = 0
        self.pre_depth = 0
        self.href: list[str] = []

    def _break(self, *, blank: bool = False) -> None:
        line = "".join(self.current)
        if self.pre_depth == 0:
            line = " ".join(line.split())
        if line:
            self.lines.append(("> " * self.quote_depth) + line)
        elif blank and self.lines and self.lines[-1]:
            self.lines.append("")
        self.current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._break(blank=not "".join(self.current).strip())
        elif tag in self.BLOCKS:
            self._break(blank=tag in self.PARAGRAPHS)
            if tag == "blockquote":
                self.quote_depth += 1
            elif tag == "pre":
                self.pre_depth += 1
            elif tag == "li":
                self.current.append("- ")
        elif tag == "a":
            self.href.append(dict(attrs).get("href") or "")
        elif tag in {"td", "th"} and self.current:
            self.current.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCKS:
            self._break(blank=tag in self.PARAGRAPHS)
            if tag == "blockquote":
                self.quote_depth = max(0, self.quote_depth - 1)
            elif tag == "pre":
                self.pre_depth = max(0, self.pre_depth - 1)
        elif tag == "a" and self.href:
            href = self.href.pop()
            shown = "".join(self.current)
            if href.startswith(("http://", "https://")) and href not in shown:
                self.current.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        self.current.append(data)

    def text(self) -> str:
        self._break()
        return "\n".join(self.lines).strip()


def html_to_text(markup: str) -> str:
    """HTML mail as plain text: sanitised with nh3 first (scripts, styles and everything
    active removed, with their content), then reduced to text."""
    clean = nh3.clean(
        markup,
        tags=_TextExtractor.BLOCKS | {"a", "br", "td", "th", "b", "i", "em", "strong", "span"},
        attributes={"a": {"href"}},
        url_schemes={"http", "https", "mailto"},
        link_rel=None,
    )
    extractor = _TextExtractor()
    extractor.feed(clean)
    extractor.close()
    return extractor.text()


# "On Mon, 6 Jan 2025, Ann <ann@example.com> wrote:", in the languages clients write it in.
ATTRIBUTION = re.compile(
    r"^.{0,300}\b(wrote|schrieb|a écrit|escribió|ha scritto|schreef|skrev|napisał)\s*:$", re.I
)
ATTRIBUTION_OPENER = re.compile(r"^(on|le|am|el|il|op|den|w dniu)\s", re.I)
ORIGINAL_MESSAGE = re.compile(
    r"^(-{2,}\s*original message\s*-{2,}|-{2,}\s*ursprüngliche nachricht\s*-{2,}|_{20,})$", re.I
)


def trim_quoted(text: str) -> str:
    """The new part of a reply: the trailing quoted block (`>` lines) and its `On … wrote:`
    line, or everything after an `Original Message` separator, are cut. Only these simple
    shapes; when trimming would leave nothing, the text is kept whole."""
    lines = text.split("\n")
    cut = len(lines)
    for index, line in enumerate(lines):
        stripped = line.strip()
        if ORIGINAL_MESSAGE.match(stripped):
            cut = index
            break
        rest = lines[index:]
        if stripped.startswith(">") and all(
            not other.strip() or other.lstrip().startswith(">") for other in rest
        ):
            cut = index
            above = index - 1
            while above >= 0 and not lines[above].strip():
                above -= 1
            if above >= 0 and ATTRIBUTION.match(lines[above].strip()):
                cut = above
                # Clients wrap a long attribution over two lines: "On …, Ann <a@b>" / "wrote:".
                if (
                    above >= 1
                    and ATTRIBUTION_OPENER.match(lines[above - 1].strip())
                    and not ATTRIBUTION_OPENER.match(lines[above].strip())
                ):
                    cut = above - 1
            break
    trimmed = "\n".join(lines[:cut]).strip()
    return trimmed or text.strip()


def _part_text(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError, UnicodeError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    return str(content)


def _body_text(message: EmailMessage) -> tuple[str, EmailMessage | None]:
    body = message.get_body(preferencelist=("plain", "html"))
    if not isinstance(body, EmailMessage):
        return "", None
    text = _part_text(body).replace("\r\n", "\n").replace("\r", "\n")
    if body.get_content_type() == "text/html":
        text = html_to_text(text)
    return trim_quoted(text), body


def _truncate(text: str, limit: int) -> str:
    marker = "\n[…]"
    return text if len(text) <= limit else text[: limit - len(marker)].rstrip() + marker


def _media_kind(content_type: str) -> str:
    major = content_type.split("/", 1)[0]
    return major if major in {"image", "audio", "video"} else "document"


@dataclass(frozen=True)
class _Attached:
    filename: str
    content_type: str
    data: bytes


def _attachments(message: EmailMessage, body: EmailMessage | None) -> list[_Attached]:
    """Every file of the mail but its text body and its alternatives: attachments, inline
    images, attached mails (as .eml files)."""
    found: list[_Attached] = []

    def visit(part: EmailMessage) -> None:
        if part is body:
            return
        content_type = part.get_content_type()
        filename = part.get_filename() or ""
        if content_type == "message/rfc822":
            inner = part.get_content()
            subject = _header(inner, "Subject") if isinstance(inner, EmailMessage) else ""
            data = inner.as_bytes() if isinstance(inner, EmailMessage) else b""
            found.append(_Attached(filename or f"{subject or 'message'}.eml", content_type, data))
            return
        if part.is_multipart():
            for sub in part.iter_parts():
                visit(sub)  # type: ignore[arg-type]
            return
        disposition = part.get_content_disposition()
        if content_type.startswith("text/") and not filename and disposition != "attachment":
            return  # the body's other alternative
        if content_type in SIGNATURE_TYPES:
            return
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if not filename:
            extension = mimetypes.guess_extension(content_type) or ""
            filename = f"attachment-{len(found) + 1}{extension}"
        found.append(_Attached(filename[:255], content_type, data))

    if message.is_multipart():
        for part in message.iter_parts():
            visit(part)  # type: ignore[arg-type]
    return found


def _delivery_report(message: EmailMessage) -> list[InboundEventPart] | None:
    """A bounce (RFC 3464 multipart/report): the status of the hub's mail it names, or None
    when the mail is not a delivery report."""
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type", "")).lower() != "delivery-status":
        return None
    original_id = ""
    action = status = diagnostic = ""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/delivery-status":
            for block in part.get_payload():
                if isinstance(block, EmailMessage) and block.get("Action"):
                    action = action or str(block.get("Action", "")).strip().lower()
                    status = status or str(block.get("Status", "")).strip()
                    diagnostic = diagnostic or " ".join(
                        str(block.get("Diagnostic-Code", "")).split()
                    )
        elif content_type in {"text/rfc822-headers", "message/rfc822"} and not original_id:
            inner = part.get_content()
            if not isinstance(inner, EmailMessage):
                inner = BytesParser(policy=policy.default).parsebytes(
                    str(inner).encode("utf-8", errors="replace")
                )
            original_id = _message_id(inner)
    if not original_id:
        return []
    if action == "failed":
        return [
            StatusUpdate(
                provider_message_id=original_id,
                status="failed",
                error_code=status or "bounced",
                error_message=diagnostic or "The recipient's mail server refused the message.",
            )
        ]
    if action == "delivered":
        return [StatusUpdate(provider_message_id=original_id, status="delivered")]
    return []


def email_parse(mail: RawEmail, *, config: dict[str, Any]) -> list[InboundEventPart]:
    """One mail as hub events: its text (quoted reply trimmed, HTML sanitised), then each file
    as a media message of its own, all in the conversation of the mail's thread. Bounces
    become status updates; mail from the channel's own address and automatic mail (RFC 3834
    Auto-Submitted, bulk Precedence) is dropped, so the agent never answers an autoresponder."""
    message = mail.message
    report = _delivery_report(message)
    if report is not None:
        return report
    address, name = _sender(message)
    if address == str(config.get("from_address", "")).lower() or _is_automated(message):
        logger.info("automatic or own mail not turned into a message")
        return []
    own_id = email_event_id(mail)
    thread = _hub_thread(_thread_root(message, own_id))
    subject = _header(message, "Subject")
    starts_thread = not _ids(_header(message, "References") + _header(message, "In-Reply-To"))
    if mail.omitted_size:
        text = (
            f"[This email is {mail.omitted_size} bytes, over the hub's limit; only its headers "
            "were fetched. Read it in the mailbox.]"
        )
        files: list[_Attached] = []
    else:
        text, body = _body_text(message)
        files = _attachments(message, body)
    if starts_thread and subject:
        text = f"Subject: {subject}\n\n{text}".strip()
    common: dict[str, Any] = {
        "external_id": address,
        "name": name,
        "thread_id": thread,
        "profile": {"email": address},
    }
    from conversations.services.attachments import attachment_max_bytes

    max_bytes = attachment_max_bytes()  # 10 MiB unless HUB_ATTACHMENT_MAX_BYTES says otherwise
    parts: list[InboundEventPart] = []
    content: dict[str, Any]
    if text or not files:
        content = {"type": "text", "text": _truncate(text or "(empty email)", MAX_TEXT)}
        parts.append(InboundMessage(content=content, provider_message_id=own_id, **common))
    for number, attached in enumerate(files, start=1):
        provider_id = f"{own_id}#{number}"
        if len(attached.data) > max_bytes:
            content = {
                "type": "unsupported",
                "description": _truncate(
                    f"attachment {attached.filename} ({len(attached.data)} bytes) is over the "
                    f"{max_bytes}-byte limit",
                    MAX_CAPTION // 2,
                ),
                "raw": {
                    "filename": attached.filename,
                    "content_type": attached.content_type,
                    "size": len(attached.data),
                },
            }
            parts.append(InboundMessage(content=content, provider_message_id=provider_id, **common))
            continue
        content = {
            "type": _media_kind(attached.content_type),
            "filename": attached.filename,
            "mime_type": attached.content_type[:100],
        }
        parts.append(
            InboundMessage(
                content=content,
                provider_message_id=provider_id,
                file=InboundFile(attached.filename, attached.content_type, attached.data),
                **common,
            )
        )
    return parts


def _hub_thread(root: str) -> str:
    """A reply to a mail the hub started (no inbound root) stays in that mail's conversation."""
    match = HUB_MESSAGE_ID.match(root)
    if not match:
        return root
    from conversations.models import Message

    thread = (
        Message.objects.filter(pk=match.group(1))
        .values_list("conversation__provider_thread_id", flat=True)
        .first()
    )
    return root if thread is None else thread


# --- Outbound --------------------------------------------------------------------------------


def _plain_subject(subject: str) -> str:
    return REPLY_PREFIX.sub("", subject).strip()


def _header_safe(value: str) -> str:
    return " ".join(value.split())


def _html(text: str) -> str:
    escaped = html.escape(text)
    linked = re.sub(r"(https?://[^\s<]+)", r'<a href="\1">\1</a>', escaped)
    paragraphs = "".join(
        f"<p>{block.replace(chr(10), '<br>')}</p>" for block in linked.split("\n\n") if block
    )
    return f'<!DOCTYPE html><html><body style="font-family:sans-serif">{paragraphs}</body></html>'


def _thread_headers(record: Any) -> tuple[str, list[str], str]:
    """(In-Reply-To, References, subject) for an outbound message, from its conversation."""
    from channels_app.models import InboundEvent

    conversation = record.conversation
    history = list(
        conversation.messages.filter(seq__lt=record.seq)
        .exclude(provider_message_id="")
        .order_by("seq")
        .values_list("provider_message_id", "direction")
    )
    ids = [pid for pid, _ in history if MESSAGE_ID.fullmatch(pid)]
    inbound = [pid for pid, direction in history if direction == "in" and MESSAGE_ID.fullmatch(pid)]
    root = conversation.provider_thread_id
    if MESSAGE_ID.fullmatch(root or ""):
        ids.insert(0, root)
    references = list(dict.fromkeys(ids))
    if len(references) > MAX_REFERENCES:
        references = [references[0], *references[-(MAX_REFERENCES - 1) :]]
    in_reply_to = inbound[-1] if inbound else (references[-1] if references else "")
    subject = ""
    for message_id in reversed(inbound):
        event = (
            InboundEvent.objects.filter(channel_id=record.channel_id, provider_event_id=message_id)
            .only("body")
            .first()
        )
        if event is None:
            continue
        try:
            subject = _header(email_decode(event.body.encode()).message, "Subject")
        except ValueError:
            continue
        break
    return in_reply_to, references, _plain_subject(subject)


def email_compose(*, message: OutboundMessage, config: dict[str, Any]) -> EmailMessage:
    """The MIME mail for an outbound message: text with an HTML alternative, the message's
    files attached, and the headers that thread it under the contact's mail."""
    from conversations.models import Message

    content = message.content
    if content.get("type") == "reaction":
        raise ProviderError(
            code="unsupported_content", message="Email has no reactions.", transient=False
        )
    if not message.recipient:
        raise ProviderError(
            code="no_recipient", message="The contact has no email address.", transient=False
        )
    record = (
        Message.objects.select_related("conversation")
        .prefetch_related("attachments")
        .filter(pk=message.message_id)
        .first()
    )
    if record is None:
        raise ProviderError(code="unknown_message", message="No such message.", transient=False)
    from_address = str(config["from_address"])
    domain = from_address.rsplit("@", 1)[-1]
    in_reply_to, references, subject = _thread_headers(record)
    mail = EmailMessage(policy=policy.SMTP)
    from_name = str(config.get("from_name", ""))
    mail["From"] = Address(display_name=from_name, addr_spec=from_address)
    try:
        mail["To"] = message.recipient
    except (ValueError, IndexError) as error:
        raise ProviderError(
            code="invalid_recipient", message="Not an email address.", transient=False
        ) from error
    # A conversation the hub started (no inbound mail yet) has no subject to answer.
    mail["Subject"] = _header_safe(
        f"Re: {subject}" if subject else f"Message from {from_name or domain}"
    )
    mail["Date"] = format_datetime(timezone.now())
    mail["Message-ID"] = f"<hub.{message.message_id}@{domain}>"
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
    if references:
        mail["References"] = " ".join(references)
    if record.sender_type == Message.SenderType.AI:
        # RFC 3834: an automatic answer, so the contact's autoresponder does not answer it.
        mail["Auto-Submitted"] = "auto-replied"
    text = content_as_text(content)
    mail.set_content(text or " ")
    if text:
        mail.add_alternative(_html(text), subtype="html")
    for attachment in record.attachments.all():
        with attachment.file.open("rb") as handle:
            data = handle.read()
        maintype, _, subtype = (attachment.content_type or "application/octet-stream").partition(
            "/"
        )
        mail.add_attachment(
            data,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    return mail


def smtp_error(error: Exception) -> ProviderError:
    """An SMTP failure sorted the RFC 5321 way: 4yz transient, 5yz permanent, with the server's
    code and text; network trouble transient; a configuration the server refuses permanent."""
    code: int | None = None
    raw: bytes | str = b""
    if isinstance(error, smtplib.SMTPRecipientsRefused) and error.recipients:
        code, raw = next(iter(error.recipients.values()))
    elif isinstance(error, smtplib.SMTPResponseException):
        code, raw = error.smtp_code, error.smtp_error
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    if code is not None and 400 <= code < 600:
        return ProviderError(code=str(code), message=text or "SMTP error", transient=code < 500)
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return ProviderError(code="smtp_not_supported", message=str(error), transient=False)
    if isinstance(error, ssl.SSLCertVerificationError):
        return ProviderError(
            code="tls_verification_failed", message=str(error.verify_message), transient=False
        )
    if isinstance(error, TimeoutError):
        return ProviderError(
            code="timeout", message="The SMTP server did not answer in time.", transient=True
        )
    if isinstance(error, smtplib.SMTPServerDisconnected | OSError):
        return ProviderError(
            code="connection_failed",
            message=f"The SMTP server could not be reached: {type(error).__name__}.",
            transient=True,
        )
    # smtplib's own refusals ("No suitable authentication method found", …): configuration.
    return ProviderError(code="smtp_error", message=str(error), transient=False)


def smtp_deliver(*, mail: EmailMessage, recipient: str, config: dict[str, Any]) -> None:
    """Hands one mail to the channel's SMTP server (with the provider timeout on every step).
    Raises ProviderError."""
    security = str(config.get("smtp_security", "starttls"))
    host = str(config["smtp_host"])
    port = int(config.get("smtp_port") or SMTP_DEFAULT_PORTS.get(security, 587))
    timeout = settings.HUB_PROVIDER_TIMEOUT_SECONDS
    context = ssl.create_default_context()
    client: smtplib.SMTP | None = None
    try:
        if security == "ssl":
            client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        client.ehlo_or_helo_if_needed()
        if security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if config.get("smtp_username"):
            client.login(str(config["smtp_username"]), str(config.get("smtp_password", "")))
        client.send_message(mail, from_addr=str(config["from_address"]), to_addrs=[recipient])
    except (smtplib.SMTPException, OSError) as error:
        if client is not None:
            client.close()
        raise smtp_error(error) from error
    # The mail is accepted: a failing QUIT must not make it look unsent (and sent again).
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


class Email(Provider):
    name = "email"
    content_types = ("message/rfc822", "application/json")

    def verify(self, *, request: HttpRequest, body: bytes, config: dict[str, Any]) -> bool:
        # No provider signs mail: the unguessable channel token in the URL is the secret (the
        # view has already matched it). Here only a well-formed request passes: a body, sent
        # as one of our content types.
        return bool(body.strip()) and (request.content_type or "") in self.content_types

    def decode(self, *, body: bytes) -> Any:
        return email_decode(body)

    def event_id(self, *, payload: Any, body: bytes) -> str:
        return email_event_id(payload)

    def parse(self, *, payload: Any, config: dict[str, Any]) -> list[InboundEventPart]:
        return email_parse(payload, config=config)

    def send(self, *, message: OutboundMessage, config: dict[str, Any]) -> SendResult:
        mail = email_compose(message=message, config=config)
        smtp_deliver(mail=mail, recipient=message.recipient, config=config)
        return SendResult(provider_message_id=str(mail["Message-ID"]))

    def rate_limits(self, *, message: OutboundMessage, config: dict[str, Any]) -> list[RateLimit]:
        # SMTP has no published rate; mail hosts throttle senders that burst. The hub's own
        # pace: one a second per account, and 20 a minute to any one recipient.
        return [
            RateLimit(scope="account", capacity=60, per_seconds=60),
            RateLimit(scope=f"to:{message.recipient.lower()}", capacity=20, per_seconds=60),
        ]
