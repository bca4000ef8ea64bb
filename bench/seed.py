"""Seeds a bench database: `python -m bench.seed '<spec json>' OUT.json` (run by `bench.stack`
with the stack's production environment).

Spec: `{"groups": [{"prefix", "count", "agent", "channels", "plain_channels", "credits"}],
"history": {"slug",
"conversations", "messages"}, "webchat": {"slug", "origin", "sessions"}}`. Tenants go through
`tenant_provision` (the real provisioning path, each one timed); the API scenario's history is
bulk-inserted (it is the data the reads are measured on, not something being measured).
A group's `plain_channels` come after its `channels` and have no agent: their messages are
stored, never answered (the ingest scenario's kind); each channel's `answered` says which.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

APP_SECRET = "bench-app-secret"  # noqa: S105 - the fake provider's, signs bench traffic


def _group(spec: dict[str, Any]) -> tuple[list[dict[str, Any]], list[float]]:
    from django_tenants.utils import schema_context

    from agents.models import Agent
    from channels_app.models import Channel, ChannelKind
    from tenants.connection import tenant_connection
    from tenants.services import tenant_provision

    tenants, timings = [], []
    for index in range(spec.get("count", 1)):
        slug = spec["prefix"] if spec.get("count", 1) == 1 else f"{spec['prefix']}_{index:05d}"
        started = time.perf_counter()
        provisioned = tenant_provision(slug=slug, name=slug, credits=spec.get("credits", 0))
        timings.append(time.perf_counter() - started)
        if spec.get("progress"):
            # A thousand tenants take a while: a run stopped half-way still has its timings.
            with open(spec["progress"], "a") as progress:
                progress.write(f"{slug} {timings[-1]:.3f}\n")
        channels = []
        with schema_context(slug):
            agent = (
                Agent.objects.create(name="Bench agent", instructions="Answer briefly.")
                if spec.get("agent")
                else None
            )
            answered = spec.get("channels", 1)
            for number in range(answered + spec.get("plain_channels", 0)):
                phone_number_id = f"1{index:07d}{number:03d}"
                channel = Channel.objects.create(
                    kind=ChannelKind.WHATSAPP,
                    name=f"WhatsApp {number}",
                    agent=agent if number < answered else None,
                    config={
                        "phone_number_id": phone_number_id,
                        "access_token": "bench-access-token",
                        "app_secret": APP_SECRET,
                        "verify_token": "bench-verify",
                    },
                )
                channels.append(
                    {
                        "id": str(channel.pk),
                        "token": channel.channel_token,
                        "phone_number_id": phone_number_id,
                        "app_secret": APP_SECRET,
                        "answered": agent is not None and number < answered,
                    }
                )
        tenant_connection().set_schema_to_public()
        tenants.append({"slug": slug, "api_key": provisioned.api_key, "channels": channels})
    return tenants, timings


def _history(spec: dict[str, Any]) -> dict[str, Any]:
    """Conversations with messages spread evenly, bulk-inserted the way the services would have
    left them (gap-free seqs, last message and activity set)."""
    from datetime import timedelta

    from django.utils import timezone
    from django_tenants.utils import schema_context

    from channels_app.models import Channel
    from conversations.models import Contact, ContactIdentity, Conversation, Message

    conversations_wanted = spec["conversations"]
    per_conversation = spec["messages"] // conversations_wanted
    started = time.perf_counter()
    with schema_context(spec["slug"]):
        channel = Channel.objects.first()
        assert channel is not None
        now = timezone.now()
        batch = 1000
        ids: list[Any] = []
        for offset in range(0, conversations_wanted, batch):
            size = min(batch, conversations_wanted - offset)
            contacts = Contact.objects.bulk_create(
                Contact(name=f"Contact {offset + i}", phone=f"+1555{offset + i:07d}")
                for i in range(size)
            )
            ContactIdentity.objects.bulk_create(
                ContactIdentity(
                    contact=c, channel_kind="whatsapp", external_id=f"1555{offset + i:07d}"
                )
                for i, c in enumerate(contacts)
            )
            conversations = Conversation.objects.bulk_create(
                Conversation(
                    channel=channel,
                    contact=c,
                    last_seq=per_conversation,
                    last_activity_at=now - timedelta(seconds=offset + i),
                )
                for i, c in enumerate(contacts)
            )
            messages = []
            for conversation in conversations:
                for seq in range(1, per_conversation + 1):
                    inbound = seq % 2 == 1
                    text = f"message {seq} of the bench history"
                    messages.append(
                        Message(
                            conversation=conversation,
                            channel=channel,
                            seq=seq,
                            direction="in" if inbound else "out",
                            sender_type="contact" if inbound else "ai",
                            sender_contact=conversation.contact if inbound else None,
                            content={"type": "text", "text": text},
                            text=text,
                            status="received" if inbound else "delivered",
                            provider_message_id=f"wamid.history.{conversation.pk}.{seq}",
                        )
                    )
            created = Message.objects.bulk_create(messages, batch_size=5000)
            last = {m.conversation_id: m for m in created if m.seq == per_conversation}
            for conversation in conversations:
                conversation.last_message = last[conversation.pk]
            Conversation.objects.bulk_update(conversations, ["last_message"], batch_size=1000)
            ids.extend(str(c.pk) for c in conversations)
        # Fresh planner statistics, as autovacuum would have gathered after such a load.
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return {
        "conversations": conversations_wanted,
        "messages": per_conversation * conversations_wanted,
        "conversation_ids": ids[:200],
        "seconds": time.perf_counter() - started,
    }


def _webchat(spec: dict[str, Any]) -> dict[str, Any]:
    """A web-chat channel and `sessions` visitor sessions minted server-side (the session
    endpoint allows 30 a minute per address, and the bench is one address)."""
    from django_tenants.utils import schema_context

    from channels_app.models import Channel, ChannelKind
    from webchat.services import visitor_session_start

    sessions = []
    with schema_context(spec["slug"]):
        channel = Channel.objects.create(
            kind=ChannelKind.WEBCHAT,
            name="Web chat",
            config={"allowed_origins": [spec["origin"]], "title": "Bench"},
        )
        for _ in range(spec["sessions"]):
            session = visitor_session_start(channel=channel, schema=spec["slug"])
            sessions.append({"token": session.token, "conversation": str(session.conversation.pk)})
    return {"channel_token": channel.channel_token, "sessions": sessions}


def main() -> None:
    spec = json.loads(sys.argv[1])
    out = Path(sys.argv[2])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings.production")
    import django

    django.setup()
    result: dict[str, Any] = {"tenants": {}, "provision_seconds": []}
    for group in spec.get("groups", []):
        tenants, timings = _group(group)
        result["tenants"][group["prefix"]] = tenants
        result["provision_seconds"].extend(timings)
    if spec.get("history"):
        result["history"] = _history(spec["history"])
    if spec.get("webchat"):
        result["webchat"] = _webchat(spec["webchat"])
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
