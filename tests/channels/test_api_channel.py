"""The API channel: `POST /api/v1/channels/{id}/inbound/` with the integrator's key, and the AI
agent's reply reaching the integrator's webhook receiver (end to end through a real worker)."""

from __future__ import annotations

import json
import os
from typing import Any

from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from channels_app.models import Channel, ChannelKind
from conversations.models import Contact, ContactIdentity, Conversation, Message, Participant
from knowledge.models import KnowledgeDocument
from processing.models import ConversationCursor, ReplyCharge
from tests import support
from tests.factories import AgentFactory, ChannelFactory
from tests.support import error_of
from tests.webhooks.conftest import Receiver, receiver  # noqa: F401 - the receiver fixture

BODY: dict[str, Any] = {
    "contact": {"external_id": "user-42", "name": "Ada Lovelace"},
    "content": {"type": "text", "text": "When do you open on Saturday?"},
    "external_message_id": "msg-1001",
}


def _api_channel(**fields) -> Channel:
    return Channel.objects.create(kind=ChannelKind.API, name="Integration", config={}, **fields)


def _url(channel: Channel) -> str:
    return f"/api/v1/channels/{channel.pk}/inbound/"


def test_a_message_identifies_the_contact_and_opens_the_conversation(tenant_a) -> None:
    with tenant_a.schema():
        channel = _api_channel()
    response = tenant_a.client().post(_url(channel), BODY, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["content"] == BODY["content"]
    assert (body["direction"], body["sender_type"], body["status"], body["seq"]) == (
        "in",
        "contact",
        "received",
        1,
    )
    assert body["provider_message_id"] == "msg-1001"
    with tenant_a.schema():
        identity = ContactIdentity.objects.select_related("contact").get()
        assert (identity.channel_kind, identity.external_id) == ("api", "user-42")
        assert identity.contact.name == "Ada Lovelace"
        assert body["sender"] == {"type": "contact", "id": str(identity.contact_id)}
        conversation = Conversation.objects.get()
        assert (conversation.channel_id, conversation.contact_id) == (
            channel.pk,
            identity.contact_id,
        )
        assert body["conversation"] == str(conversation.pk)

    # The same person again: the same contact and conversation, the next seq.
    second = tenant_a.client().post(
        _url(channel),
        {**BODY, "content": {"type": "text", "text": "And Sunday?"}, "external_message_id": "2"},
        format="json",
    )
    assert second.status_code == 201
    assert (second.json()["conversation"], second.json()["seq"]) == (body["conversation"], 2)
    with tenant_a.schema():
        assert Contact.objects.count() == 1


def test_a_repeated_external_message_id_returns_the_first_message(tenant_a) -> None:
    with tenant_a.schema():
        channel = _api_channel()
    client = tenant_a.client()
    first = client.post(_url(channel), BODY, format="json")
    again = client.post(
        _url(channel), {**BODY, "content": {"type": "text", "text": "changed"}}, format="json"
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    with tenant_a.schema():
        assert Message.objects.count() == 1


def test_media_by_url_is_kept_as_sent(tenant_a) -> None:
    with tenant_a.schema():
        channel = _api_channel()
    content = {"type": "image", "url": "https://cdn.example/a.png", "caption": "my receipt"}
    response = tenant_a.client().post(_url(channel), {**BODY, "content": content}, format="json")
    assert response.status_code == 201
    assert response.json()["content"] == content


def test_invalid_bodies_name_their_fields_and_store_nothing(tenant_a) -> None:
    with tenant_a.schema():
        channel = _api_channel()
    client = tenant_a.client()
    cases = [
        ({}, {"contact", "content", "external_message_id"}),
        ({**BODY, "contact": {"name": "No id"}}, {"contact"}),
        ({**BODY, "contact": {**BODY["contact"], "external_id": "x" * 256}}, {"contact"}),
        ({**BODY, "external_message_id": ""}, {"external_message_id"}),
        ({**BODY, "surprise": 1}, {"surprise"}),
        ({**BODY, "contact": {**BODY["contact"], "email": "a@b.example"}}, {"contact"}),
        ({**BODY, "content": {"type": "text"}}, {"content.text"}),
        ({**BODY, "content": {"type": "text", "text": "hi", "colour": "red"}}, {"content.colour"}),
        ({**BODY, "content": {"type": "sticker"}}, {"content.type"}),
        ({**BODY, "content": "hello"}, {"content"}),
        (
            {
                **BODY,
                "content": {
                    "type": "image",
                    "attachment_id": "5d1f7a52-0000-4000-8000-000000000000",
                },
            },
            {"content.attachment_id"},
        ),
    ]
    for body, fields in cases:
        response = client.post(_url(channel), body, format="json")
        assert response.status_code == 400, (body, response.content)
        error = error_of(response)
        assert error["code"] == "validation_error"
        assert set(error["details"]) == fields, (body, error)
    contact_field = client.post(_url(channel), {**BODY, "contact": {"name": "x"}}, format="json")
    assert "external_id" in error_of(contact_field)["details"]["contact"]
    not_json = client.post(_url(channel), "nope", content_type="text/plain")
    assert not_json.status_code == 415
    with tenant_a.schema():
        assert not Message.objects.exists()
        assert not Contact.objects.exists()
        assert not Conversation.objects.exists()


def test_only_an_enabled_api_channel_takes_messages(tenant_a) -> None:
    with tenant_a.schema():
        webchat = ChannelFactory.create()
        disabled = _api_channel(enabled=False)
    client = tenant_a.client()
    wrong_kind = client.post(_url(webchat), BODY, format="json")
    assert wrong_kind.status_code == 400
    assert error_of(wrong_kind)["code"] == "not_an_api_channel"
    off = client.post(_url(disabled), BODY, format="json")
    assert off.status_code == 409
    assert error_of(off)["code"] == "channel_disabled"
    unknown = client.post(
        "/api/v1/channels/5d1f7a52-0000-4000-8000-000000000000/inbound/", BODY, format="json"
    )
    assert unknown.status_code == 404
    assert error_of(unknown)["code"] == "not_found"
    with tenant_a.schema():
        assert not Message.objects.exists()


def test_another_tenants_key_cannot_post_to_the_channel(tenant_a, tenant_b) -> None:
    with tenant_a.schema():
        channel = _api_channel()
    response = tenant_b.client().post(_url(channel), BODY, format="json")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    no_key = APIClient().post(_url(channel), BODY, format="json")
    assert no_key.status_code == 401
    for tenant in (tenant_a, tenant_b):
        with tenant.schema():
            assert not Message.objects.exists()
            assert not ContactIdentity.objects.filter(channel_kind="api").exists()


def test_the_ai_reply_reaches_the_integrators_webhook(
    committed_db,
    worker: support.Process,
    receiver: Receiver,  # noqa: F811
) -> None:
    """The integrator's side through the public surface (a subscription made with the API, a
    message posted to the inbound endpoint, a real HTTP receiver), and a real Celery worker
    that drains the conversation (the offline responder answering from a knowledge document)
    and delivers the webhook. The agent, channel and document are set up in the database."""
    assert not os.environ.get("HUB_TEST_OPENAI_API_KEY"), "the offline responder must answer"
    tenant = committed_db["a"]
    slug = tenant.slug
    with schema_context(slug):
        agent = AgentFactory.create()
        channel = _api_channel(agent=agent)
        document = KnowledgeDocument.objects.create(
            title="Opening hours",
            body="Our shop is open from 9am to 6pm, Monday to Saturday. On Sundays we are closed.",
        )
    client = tenant.client()
    subscribed = client.post(
        "/api/v1/webhooks/",
        {
            "url": receiver.url,
            "events": ["message.created"],
            "secret": "whsec_api-channel-0123456789",
        },
        format="json",
    )
    assert subscribed.status_code == 201, subscribed.content
    try:
        posted = client.post(_url(channel), BODY, format="json")
        assert posted.status_code == 201, posted.content
        conversation_id = posted.json()["conversation"]

        def ai_reply() -> dict | None:
            for request in receiver.requests:
                data = json.loads(request.body)["data"]
                if data["sender_type"] == "ai":
                    return data
            return None

        reply = support.wait_until(ai_reply, timeout=60, what="the AI reply's webhook")
        assert reply["conversation"] == conversation_id
        assert reply["direction"] == "out"
        assert "9am to 6pm" in reply["content"]["text"]
        assert "Source: Opening hours" in reply["content"]["text"]
        inbound = [json.loads(r.body)["data"] for r in receiver.requests]
        assert any(d["provider_message_id"] == "msg-1001" for d in inbound)
        with schema_context(slug):
            sent = Message.objects.get(pk=reply["id"])
            support.wait_until(
                lambda: Message.objects.get(pk=sent.pk).status == "sent",
                timeout=30,
                what="the reply to count as sent",
            )
    finally:
        # Through the API, which waits for an attempt still in flight on the worker.
        deleted = client.delete(f"/api/v1/webhooks/{subscribed.json()['id']}/")
        assert deleted.status_code == 204, deleted.content
        with schema_context(slug):
            ReplyCharge.objects.filter(message__channel=channel).delete()
            ConversationCursor.objects.filter(conversation__channel=channel).delete()
            Conversation.objects.filter(channel=channel).update(last_message=None)
            Message.objects.filter(channel=channel).delete()
            Participant.objects.filter(conversation__channel=channel).delete()
            Conversation.objects.filter(channel=channel).delete()
            Contact.objects.filter(identities__channel_kind="api").delete()
            channel.delete()
            agent.delete()
            document.delete()
