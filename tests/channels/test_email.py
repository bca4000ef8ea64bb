"""Email: raw MIME through the webhook, mail fetched from a real IMAP server (a private
dovecot), replies through a real SMTP server (aiosmtpd in this process), both on 127.0.0.1."""

from __future__ import annotations

import base64
import datetime
import grp
import ipaddress
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.files.base import ContentFile

from channels_app.delivery import DeliveryDeferred, message_deliver
from channels_app.inbound import inbound_event_process
from channels_app.jobs import poll_imap
from channels_app.models import Channel, ChannelKind, InboundEvent
from channels_app.polling import imap_poll_channels
from conversations.models import Attachment, Contact, ContactIdentity, Conversation, Message
from conversations.services.attachments import attachment_create, message_send_with_attachment
from conversations.services.messages import message_send
from jobs.registry import JOBS
from jobs.schedules import DEFAULT_SCHEDULES
from tests.channels.helpers import FIXTURES

FROM = "support@shop.example"
CONTACT = "test.user@example.com"
ROOT = "<CAFAKE0001root@mail.example.com>"
PLACEHOLDER = b"<hub.00000000-0000-4000-8000-00000000a001@shop.example>"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def eml(name: str) -> bytes:
    return (FIXTURES / f"{name}.eml").read_bytes()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(autouse=True)
def _quick_and_isolated(settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.HUB_PROVIDER_TIMEOUT_SECONDS = 5


# --- A real SMTP server ----------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpCapture:
    """aiosmtpd handler: keeps every mail; RCPT answers may be scripted (used once each)."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    rcpt_replies: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if self.rcpt_replies:
            return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
        )
        return "250 2.0.0 Ok: queued"


@contextmanager
def smtp_server(**options: Any) -> Iterator[SmtpCapture]:
    capture = SmtpCapture(port=_free_port())
    controller = Controller(capture, hostname="127.0.0.1", port=capture.port, **options)
    controller.start()
    try:
        yield capture
    finally:
        controller.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpCapture]:
    with smtp_server() as capture:
        yield capture


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, usable as its own trust anchor."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _server_tls(directory: Path) -> Any:
    import ssl

    cert_path, key_path = _certificate(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path


# --- Helpers ---------------------------------------------------------------------------------


def _config(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "from_address": FROM,
        "from_name": "Shop Support",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_username": "",
        "smtp_password": "",
        "smtp_security": "none",
        **extra,
    }


def _channel(port: int = 9, **extra: Any) -> Channel:
    return Channel.objects.create(
        kind=ChannelKind.EMAIL, name="Support", config=_config(port, **extra)
    )


def _post(client, tenant, channel, body: bytes, content_type: str = "message/rfc822"):
    return client.post(
        f"/webhooks/{tenant.slug}/email/{channel.channel_token}/", body, content_type=content_type
    )


def _process_all() -> None:
    for event_id in (
        InboundEvent.objects.filter(status="received")
        .order_by("received_at")
        .values_list("pk", flat=True)
    ):
        inbound_event_process(event_id=event_id)


def _receive_plain(client, tenant, port: int, **extra: Any) -> Channel:
    """A channel whose contact has written the plain fixture mail (processed)."""
    with tenant.schema():
        channel = _channel(port, **extra)
    assert _post(client, tenant, channel, eml("email_plain")).status_code == 200
    with tenant.schema():
        _process_all()
    return channel


def _reply(conversation: Conversation, text: str, sender_type: str = "ai") -> Message:
    message, _ = message_send(
        conversation=conversation, content={"type": "text", "text": text}, sender_type=sender_type
    )
    message_deliver(message_id=message.pk)
    message.refresh_from_db()
    return message


# --- Inbound through the webhook -------------------------------------------------------------


def test_a_new_mail_opens_a_conversation_named_by_its_message_id(client, tenant_a) -> None:
    with tenant_a.schema():
        channel = _channel()
    assert _post(client, tenant_a, channel, eml("email_plain")).status_code == 200
    with tenant_a.schema():
        _process_all()
        message = Message.objects.get()
        conversation = message.conversation
        contact = message.sender_contact
        assert message.content == {
            "type": "text",
            "text": "Subject: Order 1234 never arrived\n\nHello,\n\nmy order 1234 has not arrived "
            "yet. Could you check where it is? Grüße\n\nTest User",
        }
        assert message.provider_message_id == ROOT
        assert (conversation.provider_thread_id, conversation.type) == (ROOT, "direct")
        assert contact is not None
        assert (contact.name, contact.email) == ("Test User", CONTACT)
        assert ContactIdentity.objects.get(contact=contact).external_id == CONTACT
        assert InboundEvent.objects.get().provider_event_id == ROOT


def test_html_is_sanitised_and_reduced_to_text(client, tenant_a) -> None:
    with tenant_a.schema():
        channel = _channel()
    assert _post(client, tenant_a, channel, eml("email_html_only")).status_code == 200
    with tenant_a.schema():
        _process_all()
        assert Message.objects.get().content["text"] == (
            "Subject: Refund request\n\nI would like a refund for order 1234.\n\n"
            "Details: my order (https://shop.example/orders/1234)\n\n- blue shirt\n- red hat"
        )


@pytest.mark.parametrize("variant", ["raw", "raw_base64"])
def test_a_json_body_carries_the_raw_mail(client, tenant_a, variant) -> None:
    raw = eml("email_latin1_8bit")
    value = raw.decode("latin-1") if variant == "raw" else base64.b64encode(raw).decode()
    with tenant_a.schema():
        channel = _channel()
    body = json.dumps({variant: value}).encode()
    assert _post(client, tenant_a, channel, body, "application/json").status_code == 200
    with tenant_a.schema():
        _process_all()
        message = Message.objects.get()
        assert message.sender_contact is not None
        assert message.sender_contact.name == "Jürgen Müller"
        if variant == "raw_base64":  # 8-bit mail survives only base64 (JSON strings are text)
            assert message.content["text"] == (
                "Subject: Rückfrage\n\nGrüße aus Köln, wo bleibt meine Bestellung?"
            )


def test_a_redelivered_mail_is_processed_once(client, tenant_a) -> None:
    with tenant_a.schema():
        channel = _channel()
    for _ in range(3):
        assert _post(client, tenant_a, channel, eml("email_attachments")).status_code == 200
    with tenant_a.schema():
        _process_all()
        assert InboundEvent.objects.count() == 1
        assert Message.objects.count() == 3
        assert Attachment.objects.count() == 2


def test_attachments_are_stored_as_conversation_attachments(client, tenant_a) -> None:
    with tenant_a.schema():
        channel = _channel()
    assert _post(client, tenant_a, channel, eml("email_attachments")).status_code == 200
    with tenant_a.schema():
        _process_all()
        text, image, document = Message.objects.order_by("seq")
        assert text.content == {
            "type": "text",
            "text": "Subject: Broken item\n\nThe item arrived broken, photo and invoice attached.",
        }
        image_file = Attachment.objects.get(message=image)
        assert image.content == {
            "type": "image",
            "attachment_id": str(image_file.pk),
            "filename": "broken.png",
            "mime_type": "image/png",
        }
        assert image.provider_message_id == "<FAKE0004files@mail.example.com>#1"
        assert (image_file.conversation_id, image_file.content_type) == (
            image.conversation_id,
            "image/png",
        )
        with image_file.file.open("rb") as handle:
            assert handle.read() == PNG
        pdf = Attachment.objects.get(message=document)
        assert document.content["type"] == "document"
        assert document.content["filename"] == "invoice 1234.pdf"
        assert (pdf.filename, pdf.content_type) == ("invoice_1234.pdf", "application/pdf")
        assert {text.conversation_id, document.conversation_id} == {image.conversation_id}


def test_an_attachment_over_the_limit_is_not_stored(client, tenant_a, settings) -> None:
    settings.HUB_ATTACHMENT_MAX_BYTES = 69  # the PNG has 70 bytes, the PDF 69
    with tenant_a.schema():
        channel = _channel()
    assert _post(client, tenant_a, channel, eml("email_attachments")).status_code == 200
    with tenant_a.schema():
        _process_all()
        _, image, document = Message.objects.order_by("seq")
        assert image.content["type"] == "unsupported"
        assert image.content["raw"] == {
            "filename": "broken.png",
            "content_type": "image/png",
            "size": 70,
        }
        assert document.content["type"] == "document"
        assert Attachment.objects.count() == 1


def test_automatic_replies_and_own_mail_are_dropped(client, tenant_a) -> None:
    with tenant_a.schema():
        channel = _channel()
    own = eml("email_plain").replace(b'"Test User" <Test.User@Example.COM>', FROM.encode())
    assert _post(client, tenant_a, channel, eml("email_autoreply")).status_code == 200
    assert _post(client, tenant_a, channel, own).status_code == 200
    with tenant_a.schema():
        _process_all()
        assert InboundEvent.objects.filter(status="processed").count() == 2
        assert Message.objects.count() == 0


def test_a_body_that_is_not_a_mail_is_400(client, tenant_a) -> None:
    with tenant_a.schema():
        channel = _channel()
    assert _post(client, tenant_a, channel, b"Subject: no sender\r\n\r\nhi\r\n").status_code == 400
    body = json.dumps({"mail": "?"}).encode()
    assert _post(client, tenant_a, channel, body, "application/json").status_code == 400
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


def test_an_empty_request_is_refused_and_other_content_types_are_415(client, tenant_a) -> None:
    with tenant_a.schema():
        channel = _channel()
    assert _post(client, tenant_a, channel, b"\r\n \r\n").status_code == 401
    assert _post(client, tenant_a, channel, eml("email_plain"), "text/plain").status_code == 415
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


def test_another_tenants_channel_token_is_404(client, tenant_a, tenant_b) -> None:
    with tenant_a.schema():
        channel = _channel()
    assert _post(client, tenant_b, channel, eml("email_plain")).status_code == 404
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 0


# --- Outbound over SMTP, and the thread both ways --------------------------------------------


def test_replies_thread_under_the_contacts_mail_both_ways(client, tenant_a, smtp) -> None:
    with tenant_a.schema():
        channel = _channel(smtp.port)
    _post(client, tenant_a, channel, eml("email_plain"))
    with tenant_a.schema():
        _process_all()
        conversation = Conversation.objects.get()
        first = _reply(conversation, "Your parcel is on its way: https://track.example/1234")
    assert (first.status, first.provider_message_id) == (
        "sent",
        f"<hub.{first.pk}@shop.example>",
    )
    (received,) = smtp.received
    assert (received.mail_from, received.rcpt_tos) == (FROM, [CONTACT])
    mail = received.message()
    assert mail["Message-ID"] == first.provider_message_id
    assert (mail["In-Reply-To"], mail["References"]) == (ROOT, ROOT)
    assert mail["Subject"] == "Re: Order 1234 never arrived"
    assert (mail["From"], mail["To"]) == (f"Shop Support <{FROM}>", CONTACT)
    assert mail["Auto-Submitted"] == "auto-replied"
    plain = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().strip() == "Your parcel is on its way: https://track.example/1234"
    assert '<a href="https://track.example/1234">' in html.get_content()

    # The contact answers (quoting the hub's mail): the same conversation, quote trimmed.
    answer = eml("email_reply_quoted").replace(PLACEHOLDER, first.provider_message_id.encode())
    assert _post(client, tenant_a, channel, answer).status_code == 200
    with tenant_a.schema():
        _process_all()
        contact_reply = Message.objects.get(
            provider_message_id="<CAFAKE0002reply@mail.example.com>"
        )
        assert contact_reply.conversation_id == conversation.pk
        assert contact_reply.content == {
            "type": "text",
            "text": "Thanks, the tracking number works.",
        }
        second = _reply(conversation, "Glad to hear it.", sender_type="operator")
    mail = smtp.received[1].message()
    assert mail["In-Reply-To"] == "<CAFAKE0002reply@mail.example.com>"
    assert mail["References"].split() == [
        ROOT,
        first.provider_message_id,
        "<CAFAKE0002reply@mail.example.com>",
    ]
    assert mail["Subject"] == "Re: Order 1234 never arrived"
    assert mail["Auto-Submitted"] is None
    assert second.status == "sent"


def test_a_conversation_the_hub_started_gets_the_contacts_answer(client, tenant_a, smtp) -> None:
    with tenant_a.schema():
        channel = _channel(smtp.port)
        contact = Contact.objects.create(name="Test User", email=CONTACT)
        ContactIdentity.objects.create(contact=contact, channel_kind="email", external_id=CONTACT)
        conversation = Conversation.objects.create(channel=channel, contact=contact)
        opening = _reply(conversation, "Your order has shipped.", sender_type="operator")
    mail = smtp.received[0].message()
    assert mail["Subject"] == "Message from Shop Support"
    assert mail["In-Reply-To"] is None
    assert mail["References"] is None
    answer = EmailMessage()
    answer["From"] = f"Test User <{CONTACT}>"
    answer["To"] = FROM
    answer["Subject"] = "Re: Message from Shop Support"
    answer["Message-ID"] = "<FAKE0010answer@mail.example.com>"
    answer["In-Reply-To"] = opening.provider_message_id
    answer["References"] = opening.provider_message_id
    answer.set_content("Thank you!")
    assert _post(client, tenant_a, channel, answer.as_bytes()).status_code == 200
    with tenant_a.schema():
        _process_all()
        assert Conversation.objects.count() == 1
        assert Message.objects.get(direction="in").conversation_id == conversation.pk


def test_an_operators_file_is_attached(client, tenant_a, smtp) -> None:
    with tenant_a.schema():
        channel = _channel(smtp.port)
    _post(client, tenant_a, channel, eml("email_plain"))
    with tenant_a.schema():
        _process_all()
        conversation = Conversation.objects.get()
        attachment = attachment_create(
            conversation=conversation,
            file=ContentFile(PNG),
            filename="label.png",
            content_type="image/png",
        )
        message, _ = message_send_with_attachment(
            conversation=conversation,
            content={"type": "image", "attachment_id": str(attachment.pk), "caption": "Label"},
            sender_type="operator",
        )
        message_deliver(message_id=message.pk)
    mail = smtp.received[0].message()
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    assert body.get_content().strip() == "Label"
    (attached,) = list(mail.iter_attachments())
    assert (attached.get_filename(), attached.get_content_type()) == ("label.png", "image/png")
    assert attached.get_content() == PNG


def test_a_bounce_fails_the_hubs_message(client, tenant_a, smtp) -> None:
    with tenant_a.schema():
        channel = _channel(smtp.port)
    _post(client, tenant_a, channel, eml("email_plain"))
    with tenant_a.schema():
        _process_all()
        sent = _reply(Conversation.objects.get(), "Hello")
    placeholder = b"<hub.00000000-0000-4000-8000-00000000b005@shop.example>"
    bounce = eml("email_bounce").replace(placeholder, sent.provider_message_id.encode())
    assert _post(client, tenant_a, channel, bounce).status_code == 200
    with tenant_a.schema():
        _process_all()
        sent.refresh_from_db()
        assert (sent.status, sent.error_code) == ("failed", "5.1.1")
        assert "User unknown" in sent.error_message
        assert Conversation.objects.count() == 1


def test_a_refused_recipient_fails_permanently(client, tenant_a, smtp) -> None:
    smtp.rcpt_replies.append("550 5.1.1 <test.user@example.com>: Recipient address rejected")
    _receive_plain(client, tenant_a, smtp.port)
    with tenant_a.schema():
        message = _reply(Conversation.objects.get(), "Hello")
    assert (message.status, message.error_code) == ("failed", "550")
    assert "Recipient address rejected" in message.error_message


def test_a_temporary_refusal_is_retried(client, tenant_a, smtp) -> None:
    smtp.rcpt_replies.append("451 4.7.1 Greylisted, try again later")
    _receive_plain(client, tenant_a, smtp.port)
    with tenant_a.schema():
        message, _ = message_send(
            conversation=Conversation.objects.get(),
            content={"type": "text", "text": "Hello"},
            sender_type="ai",
        )
        with pytest.raises(DeliveryDeferred) as deferred:
            message_deliver(message_id=message.pk)
        assert deferred.value.code == "451"
        assert Message.objects.get(pk=message.pk).status == "pending"
        message_deliver(message_id=message.pk)
        assert Message.objects.get(pk=message.pk).status == "sent"
    assert len(smtp.received) == 1


def test_an_unreachable_server_is_transient(client, tenant_a) -> None:
    _receive_plain(client, tenant_a, _free_port())
    with tenant_a.schema():
        message, _ = message_send(
            conversation=Conversation.objects.get(),
            content={"type": "text", "text": "Hello"},
            sender_type="ai",
        )
        with pytest.raises(DeliveryDeferred) as deferred:
            message_deliver(message_id=message.pk)
        assert deferred.value.code == "connection_failed"


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    good = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"support",
        b"s3cret",
    )
    # handled=False: aiosmtpd answers the refusal (535) itself.
    return AuthResult(success=good, handled=False)


# Plain-text AUTH is what a test on loopback needs; aiosmtpd warns about it for real servers.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize(("password", "status"), [("s3cret", "sent"), ("wrong", "failed")])
def test_smtp_login(client, tenant_a, password, status) -> None:
    with smtp_server(
        authenticator=_authenticator, auth_required=True, auth_require_tls=False
    ) as server:
        _receive_plain(
            client, tenant_a, server.port, smtp_username="support", smtp_password=password
        )
        with tenant_a.schema():
            message = _reply(Conversation.objects.get(), "Hello")
        assert message.status == status
        assert len(server.received) == (status == "sent")
        if status == "failed":
            assert message.error_code == "535"


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_is_verified(client, tenant_a, tmp_path, monkeypatch, security) -> None:
    context, cert_path = _server_tls(tmp_path)
    options = (
        {"tls_context": context, "require_starttls": True}
        if security == "starttls"
        else {"ssl_context": context}
    )
    with smtp_server(**options) as server:
        _receive_plain(client, tenant_a, server.port, smtp_security=security)
        with tenant_a.schema():
            conversation = Conversation.objects.get()
            # Not trusted: a configuration problem no retry fixes.
            untrusted = _reply(conversation, "Hello")
            assert (untrusted.status, untrusted.error_code) == (
                "failed",
                "tls_verification_failed",
            )
            monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
            trusted = _reply(conversation, "Hello again")
        assert trusted.status == "sent"
        assert len(server.received) == 1


# --- Inbound over IMAP: a private dovecot ----------------------------------------------------

IMAP_USER = FROM
IMAP_PASSWORD = "imap-secret"


@dataclass
class Dovecot:
    port: int
    maildir: Path
    uid: int
    gid: int
    counter: int = 0

    def deliver(self, raw: bytes, *, seen: bool = False) -> None:
        """Delivers the way an MDA does: written under tmp/, renamed into new/ (or cur/)."""
        self.counter += 1
        name = f"{int(time.time())}.M{self.counter}P{os.getpid()}.hub"
        staged = self.maildir / "tmp" / name
        staged.write_bytes(raw)
        os.chown(staged, self.uid, self.gid)
        final = self.maildir / "cur" / f"{name}:2,S" if seen else self.maildir / "new" / name
        staged.rename(final)


def _dovecot_binary() -> str | None:
    found = shutil.which("dovecot")
    if found:
        return found
    return "/usr/sbin/dovecot" if os.access("/usr/sbin/dovecot", os.X_OK) else None


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    binary = _dovecot_binary()
    if binary is None:
        reason = (
            "dovecot is not installed (Debian: apt-get install dovecot-imapd); the IMAP tests "
            "poll a real IMAP server"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}, and .ci/run installs it in CI.")
        pytest.skip(reason)
    # Not tmp_path: dovecot's mail processes run unprivileged and must reach the maildir, and
    # pytest's temporary tree is private to its owner.
    root = Path(tempfile.mkdtemp(prefix="hub-dovecot-"))
    root.chmod(0o755)
    if os.getuid() == 0:
        # Dovecot refuses mail access as root: the mail user is `nobody`.
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
        privileges = login_chroot = ""
    else:
        # Unprivileged: every dovecot process runs as this user, without chroot.
        uid, gid = os.getuid(), os.getgid()
        user, group = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
        privileges = (
            f"default_login_user = {user}\ndefault_internal_user = {user}\n"
            f"default_internal_group = {group}\n"
        )
        login_chroot = "  chroot =\n"
    port = _free_port()
    maildir = root / "mail" / IMAP_USER
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for path in [root / "mail", maildir, *(maildir / sub for sub in ("cur", "new", "tmp"))]:
        os.chown(path, uid, gid)
    (root / "dovecot.conf").write_text(
        f"""base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
first_valid_uid = {min(uid, 500)}
first_valid_gid = {min(gid, 500)}
{privileges}
passdb {{
  driver = static
  args = password={IMAP_PASSWORD}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
{login_chroot}  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""
    )
    process = subprocess.Popen(
        [binary, "-F", "-c", str(root / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (
                        (root / "dovecot.log").read_text()
                        if (root / "dovecot.log").exists()
                        else ""
                    )
                    stderr = process.stderr.read().decode() if process.stderr else ""
                    pytest.fail(f"dovecot did not start:\n{stderr}\n{log}")
                time.sleep(0.1)
        yield Dovecot(port=port, maildir=maildir, uid=uid, gid=gid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


def _imap_channel(dovecot: Dovecot, password: str = IMAP_PASSWORD) -> Channel:
    return _channel(
        imap_host="127.0.0.1",
        imap_port=dovecot.port,
        imap_username=IMAP_USER,
        imap_password=password,
        imap_security="none",
    )


def test_new_mail_is_fetched_once_and_read_mail_left_alone(client, tenant_a, dovecot) -> None:
    already_read = eml("email_html_only")
    dovecot.deliver(already_read, seen=True)
    dovecot.deliver(eml("email_plain"))
    dovecot.deliver(eml("email_attachments"))
    with tenant_a.schema():
        channel = _imap_channel(dovecot)
        assert imap_poll_channels() == {"channels": 1, "recorded": 2, "failed": 0}
        assert imap_poll_channels()["recorded"] == 0
        _process_all()
        assert set(Message.objects.values_list("provider_message_id", flat=True)) == {
            ROOT,
            "<FAKE0004files@mail.example.com>",
            "<FAKE0004files@mail.example.com>#1",
            "<FAKE0004files@mail.example.com>#2",
        }
        assert Attachment.objects.filter(message__isnull=False).count() == 2
        # New mail after the first poll, 8-bit and not UTF-8: kept byte for byte.
        dovecot.deliver(eml("email_latin1_8bit"))
        assert poll_imap()["recorded"] == 1
        event = InboundEvent.objects.get(provider_event_id="<FAKE0007latin1@example.de>")
        assert event.content_type == "application/json"
        assert base64.b64decode(json.loads(event.body)["raw_base64"]) == eml("email_latin1_8bit")
        _process_all()
        latest = Message.objects.get(provider_message_id="<FAKE0007latin1@example.de>")
        assert latest.content["text"].endswith("Grüße aus Köln, wo bleibt meine Bestellung?")
    # The same mail posted to the webhook as well is recognised by its Message-ID.
    assert _post(client, tenant_a, channel, eml("email_plain")).status_code == 200
    with tenant_a.schema():
        assert InboundEvent.objects.count() == 3


def test_a_refused_login_is_counted_and_nothing_recorded(tenant_a, dovecot) -> None:
    assert JOBS["channels.poll_imap"] is poll_imap
    assert ("channels.poll_imap", "*", "*") in DEFAULT_SCHEDULES.values()
    dovecot.deliver(eml("email_plain"))
    with tenant_a.schema():
        _imap_channel(dovecot, password="wrong")
        assert imap_poll_channels() == {"channels": 1, "recorded": 0, "failed": 1}
        assert InboundEvent.objects.count() == 0
