"""`conversations/{id}/messages/` and `attachments/`: list by seq, idempotent send, soft delete,
uploads through Django's storage API and linking them into a message."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations.models import Attachment, Conversation, Message
from conversations.services.messages import message_receive
from hub import events
from tests.factories import ConversationFactory, OperatorFactory
from tests.support import error_of

TEXT = {"type": "text", "text": "hello"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _url(conversation: Conversation, rest: str = "messages/") -> str:
    return f"/api/v1/conversations/{conversation.pk}/{rest}"


def _inbound(conversation: Conversation, text: str = "hello") -> Message:
    message, _ = message_receive(
        conversation=conversation, contact=conversation.contact, content={**TEXT, "text": text}
    )
    return message


@pytest.fixture
def media(settings, tmp_path: Path) -> Path:
    """Uploads land in a temporary MEDIA_ROOT, never in the shared var/."""
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _as_read(client: Any, conversation: Conversation, sent: dict[str, Any]) -> dict[str, Any]:
    """The message a send answered with, as a read of it shows it."""
    return client.get(_url(conversation, f"messages/{sent['id']}/")).json()


def _upload(client: Any, conversation: Conversation, name: str = "photo.png", **kw: Any) -> Any:
    data = kw.pop("data", PNG)
    content_type = kw.pop("content_type", "image/png")
    upload = SimpleUploadedFile(name, data, content_type=content_type)
    return client.post(_url(conversation, "attachments/"), {"file": upload, **kw})


def test_list_is_in_seq_order_with_a_cursor_and_after_seq(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        for index in range(5):
            _inbound(conversation, f"message {index}")
    client = tenant_a.client()
    page = client.get(_url(conversation), {"page_size": 2}).json()
    seqs = [item["seq"] for item in page["results"]]
    while page["next"]:
        page = client.get(page["next"]).json()
        seqs += [item["seq"] for item in page["results"]]
    assert seqs == [1, 2, 3, 4, 5]
    after = client.get(_url(conversation), {"after_seq": 3}).json()["results"]
    assert [item["seq"] for item in after] == [4, 5]
    assert after[0]["content"] == {"type": "text", "text": "message 3"}
    assert after[0]["direction"] == "in"
    assert after[0]["sender"] == {"type": "contact", "id": str(conversation.contact_id)}
    # Paging on from after_seq, and a cursor meeting an after_seq: after the later of the two.
    page = client.get(_url(conversation), {"after_seq": 1, "page_size": 2}).json()
    assert [item["seq"] for item in page["results"]] == [2, 3]
    cursor = page["next"].split("cursor=")[1]
    assert [item["seq"] for item in client.get(page["next"]).json()["results"]] == [4, 5]
    later = client.get(f"{_url(conversation)}?after_seq=4&cursor={cursor}").json()["results"]
    assert [item["seq"] for item in later] == [5]
    earlier = client.get(f"{_url(conversation)}?after_seq=0&cursor={cursor}").json()["results"]
    assert [item["seq"] for item in earlier] == [4, 5]
    bad = client.get(_url(conversation), {"after_seq": "five"})
    assert bad.status_code == 400
    assert "after_seq" in error_of(bad)["details"]


def test_list_runs_a_constant_number_of_queries(tenant_a, media) -> None:
    client = tenant_a.client()
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        operator = OperatorFactory.create()

    def add(index: int) -> None:
        # Every kind of row the list shows: an operator's message with a file, a contact's one.
        if index % 2:
            with tenant_a.schema():
                _inbound(conversation, f"inbound {index}")
            return
        attachment_id = _upload(client, conversation).json()["id"]
        content = {"type": "image", "attachment_id": attachment_id}
        response = client.post(
            _url(conversation), {"content": content, "operator": str(operator.pk)}, format="json"
        )
        assert response.status_code == 201

    def queries() -> int:
        client.get(_url(conversation))
        with CaptureQueriesContext(connection) as captured:
            response = client.get(_url(conversation), {"page_size": 100})
        assert response.status_code == 200
        return len(captured)

    add(0)
    one = queries()
    for index in range(1, 30):
        add(index)
    listed = client.get(_url(conversation), {"page_size": 100}).json()["results"]
    assert len(listed) == 30
    assert len(listed[0]["attachments"]) == 1
    assert listed[0]["sender"]["name"] == operator.display_name
    assert queries() == one


def test_send_then_repeat_with_the_same_client_id(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
    client = tenant_a.client()
    body = {"content": {"type": "text", "text": "Your order shipped"}, "client_id": "crm-42"}
    first = client.post(_url(conversation), body, format="json")
    assert first.status_code == 201, first.content
    message = first.json()
    assert message["direction"] == "out"
    assert message["sender_type"] == "operator"
    # The web chat's delivery is the hub's own push: sent once recorded.
    assert message["status"] == "sent"
    assert message["seq"] == 1
    assert message["client_id"] == "crm-42"
    assert message == _as_read(client, conversation, message)
    again = client.post(
        _url(conversation),
        {**body, "content": {"type": "text", "text": "a different text"}},
        format="json",
    )
    assert again.status_code == 200
    assert again.json()["id"] == message["id"]
    assert again.json()["content"] == body["content"]
    with tenant_a.schema():
        assert Message.objects.filter(conversation=conversation).count() == 1
        assert Conversation.objects.get(pk=conversation.pk).last_seq == 1


def test_send_as_an_operator_and_a_private_note(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        operator = OperatorFactory.create(display_name="Dana")
    client = tenant_a.client()
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            _url(conversation),
            {"content": TEXT, "operator": str(operator.pk), "is_private": True},
            format="json",
        )
    # The conversation and the operator read, the message written and its conversation moved
    # on: the answer is the row as written, not read again. (Read before the next request,
    # which empties the connection's log.)
    reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert reads
    assert not any('FROM "conversations_message"' in sql for sql in reads), reads
    assert response.status_code == 201
    body = response.json()
    assert body["sender"] == {"type": "operator", "id": str(operator.pk), "name": "Dana"}
    assert body["is_private"] is True
    assert body["status"] == "sent"
    assert body == _as_read(client, conversation, body)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": {"type": "text", "text": "x" * 4097}}, "content.text"),
        ({"content": {"type": "text"}}, "content.text"),
        ({"content": {"type": "teleport"}}, "content.type"),
        ({"content": {"type": "text", "text": "hi", "colour": "red"}}, "content.colour"),
        ({"content": {"type": "image", "caption": "no file"}}, "content.url"),
        ({"content": {"type": "location", "latitude": 91, "longitude": 0}}, "content.latitude"),
        ({"content": "just a string"}, "content"),
        ({}, "content"),
        ({"content": TEXT, "colour": "red"}, "colour"),
        ({"content": TEXT, "client_id": "x" * 101}, "client_id"),
        ({"content": TEXT, "operator": str(uuid.uuid4())}, "operator"),
        ({"content": TEXT, "is_private": "secretly"}, "is_private"),
    ],
)
def test_invalid_input_is_400_naming_the_field(tenant_a, body, field) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
    response = tenant_a.client().post(_url(conversation), body, format="json")
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert field in error["details"]
    with tenant_a.schema():
        assert not Message.objects.filter(conversation=conversation).exists()


def test_text_of_exactly_the_limit_is_accepted(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
    response = tenant_a.client().post(
        _url(conversation), {"content": {"type": "text", "text": "x" * 4096}}, format="json"
    )
    assert response.status_code == 201


def test_retrieve_and_soft_delete(tenant_a) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        message = _inbound(conversation, "delete me")
        elsewhere = _inbound(ConversationFactory.create())
    client = tenant_a.client()
    url = _url(conversation, f"messages/{message.pk}/")
    assert client.get(url).json()["content"] == {"type": "text", "text": "delete me"}
    missing = client.get(_url(conversation, f"messages/{uuid.uuid4()}/"))
    assert missing.status_code == 404
    # A message of another conversation is not found through this one.
    wrong = client.get(_url(conversation, f"messages/{elsewhere.pk}/"))
    assert wrong.json() == missing.json()
    assert client.delete(url).status_code == 204
    deleted = client.get(url).json()
    assert deleted["content"] is None
    assert deleted["deleted_at"] is not None
    assert deleted["seq"] == 1
    assert client.delete(url).status_code == 204
    listed = client.get(_url(conversation)).json()["results"]
    assert [item["content"] for item in listed] == [None]


def test_upload_a_file_and_send_it(
    tenant_a, media, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    published: list[tuple[str, str, dict[str, Any]]] = []
    monkeypatch.setattr(events, "_subscribers", [lambda *event: published.append(event)])
    with tenant_a.schema():
        conversation = ConversationFactory.create()
    client = tenant_a.client()
    uploaded = _upload(client, conversation, name="../../etc/My Photo.png")
    assert uploaded.status_code == 201, uploaded.content
    attachment = uploaded.json()
    assert set(attachment) == {"id", "filename", "content_type", "size", "url"}
    assert attachment["filename"] == "My_Photo.png"
    assert attachment["content_type"] == "image/png"
    assert attachment["size"] == len(PNG)
    with tenant_a.schema():
        stored = Attachment.objects.get(pk=attachment["id"])
        assert stored.message_id is None
        name = stored.file.name
        assert name
        assert name.startswith(f"attachments/{tenant_a.slug}/{conversation.pk}/{stored.pk}/")
        assert default_storage.exists(name)
        assert (media / name).read_bytes() == PNG
    assert attachment["url"].endswith(name)

    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post(
            _url(conversation),
            {
                "content": {"type": "image", "attachment_id": attachment["id"], "caption": "Here"},
                "client_id": "img-1",
            },
            format="json",
        )
    assert sent.status_code == 201, sent.content
    message = sent.json()
    assert message["attachments"] == [attachment]
    assert message == _as_read(client, conversation, message)
    # The live inbox and the integrators' webhooks get the file with the new message.
    (created,) = [payload for _, name, payload in published if name == "message.created"]
    assert created["attachments"] == [attachment]
    assert message["content"] == {
        "type": "image",
        "attachment_id": attachment["id"],
        "caption": "Here",
        "filename": "My_Photo.png",
        "mime_type": "image/png",
    }
    # The same client_id again: the first message, nothing linked twice.
    repeat = client.post(
        _url(conversation),
        {"content": {"type": "image", "attachment_id": attachment["id"]}, "client_id": "img-1"},
        format="json",
    )
    assert repeat.status_code == 200
    assert repeat.json()["id"] == message["id"]
    # A file belongs to one message only.
    reused = client.post(
        _url(conversation),
        {"content": {"type": "image", "attachment_id": attachment["id"]}},
        format="json",
    )
    assert reused.status_code == 400
    assert "content.attachment_id" in error_of(reused)["details"]


def test_linking_checks_the_attachment(tenant_a, media) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        other = ConversationFactory.create()
    client = tenant_a.client()
    foreign = _upload(client, other).json()["id"]
    pdf = _upload(client, conversation, name="invoice.pdf", content_type="application/pdf")
    pdf_id = pdf.json()["id"]
    for content, field in (
        ({"type": "image", "attachment_id": foreign}, "content.attachment_id"),
        ({"type": "image", "attachment_id": str(uuid.uuid4())}, "content.attachment_id"),
        ({"type": "image", "attachment_id": "not-an-id"}, "content.attachment_id"),
        ({"type": "image", "attachment_id": pdf_id}, "content.type"),
    ):
        response = client.post(_url(conversation), {"content": content}, format="json")
        assert response.status_code == 400, response.content
        assert field in error_of(response)["details"]
    document = client.post(
        _url(conversation),
        {"content": {"type": "document", "attachment_id": pdf_id}},
        format="json",
    )
    assert document.status_code == 201
    assert document.json()["content"]["filename"] == "invoice.pdf"


def test_erasing_the_contact_deletes_its_files_sent_or_not(tenant_a, media) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
    client = tenant_a.client()
    sent = _upload(client, conversation).json()["id"]
    client.post(
        _url(conversation), {"content": {"type": "image", "attachment_id": sent}}, format="json"
    )
    _upload(client, conversation, name="never-sent.png")
    folder = media / "attachments" / tenant_a.slug / str(conversation.pk)
    assert len(list(folder.iterdir())) == 2
    response = client.post(f"/api/v1/contacts/{conversation.contact_id}/erase/", format="json")
    assert response.status_code == 200
    with tenant_a.schema():
        assert not Attachment.objects.filter(conversation=conversation).exists()
    assert not [path for path in folder.rglob("*") if path.is_file()]


def test_upload_over_the_limit_is_413(tenant_a, media, settings) -> None:
    settings.HUB_ATTACHMENT_MAX_BYTES = 1000
    with tenant_a.schema():
        conversation = ConversationFactory.create()
    client = tenant_a.client()
    assert _upload(client, conversation, data=b"x" * 1000).status_code == 201
    # Just over: found once the body is parsed.
    over = _upload(client, conversation, data=b"x" * 1001)
    # Far over: refused from Content-Length, before the body is read.
    far_over = _upload(client, conversation, data=b"x" * 200_000)
    for response in (over, far_over):
        assert response.status_code == 413
        error = error_of(response)
        assert error["code"] == "payload_too_large"
        assert error["details"]["max_bytes"] == 1000
    with tenant_a.schema():
        assert Attachment.objects.filter(conversation=conversation).count() == 1
    assert len(list((media / "attachments" / tenant_a.slug / str(conversation.pk)).iterdir())) == 1


def test_default_limit_is_10_mib(tenant_a, media, settings) -> None:
    if hasattr(settings, "HUB_ATTACHMENT_MAX_BYTES"):
        del settings.HUB_ATTACHMENT_MAX_BYTES
    with tenant_a.schema():
        conversation = ConversationFactory.create()
    response = _upload(tenant_a.client(), conversation, data=b"x" * (10 * 1024 * 1024 + 1))
    assert response.status_code == 413
    assert error_of(response)["details"]["max_bytes"] == 10 * 1024 * 1024


def test_upload_needs_multipart_with_one_file(tenant_a, media) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
    client = tenant_a.client()
    url = _url(conversation, "attachments/")
    as_json = client.post(url, {"file": "aGVsbG8="}, format="json")
    assert as_json.status_code == 415
    assert error_of(as_json)["code"] == "unsupported_media_type"
    no_file = client.post(url, {})
    assert no_file.status_code == 400
    assert "file" in error_of(no_file)["details"]
    extra = _upload(client, conversation, note="x")
    assert extra.status_code == 400
    assert "note" in error_of(extra)["details"]
    empty = _upload(client, conversation, data=b"")
    assert empty.status_code == 400
    assert "file" in error_of(empty)["details"]


def test_another_tenants_messages_are_not_found(tenant_a, tenant_b, media) -> None:
    with tenant_a.schema():
        conversation = ConversationFactory.create()
        message = _inbound(conversation, "private words")
    b = tenant_b.client()
    with tenant_b.schema():
        own = ConversationFactory.create()
    missing = b.get(f"/api/v1/conversations/{uuid.uuid4()}/messages/")
    assert missing.status_code == 404
    for response in (
        b.get(_url(conversation)),
        b.post(_url(conversation), {"content": TEXT}, format="json"),
        b.get(_url(conversation, f"messages/{message.pk}/")),
        b.delete(_url(conversation, f"messages/{message.pk}/")),
        _upload(b, conversation),
    ):
        assert response.status_code == 404
        assert response.json() == missing.json()
    # Through B's own conversation, A's message id is just as unknown.
    through_own = b.get(_url(own, f"messages/{message.pk}/"))
    assert through_own.status_code == 404
    assert through_own.json() == b.get(_url(own, f"messages/{uuid.uuid4()}/")).json()
    with tenant_a.schema():
        stored = Message.objects.get(pk=message.pk)
        assert stored.deleted_at is None
        assert Message.objects.filter(conversation=conversation).count() == 1
        assert not Attachment.objects.exists()
