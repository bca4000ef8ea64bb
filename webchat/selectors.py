"""Reads of the web chat: which channel a URL names, what a visitor's socket needs to know, and
the messages a visitor may see (never private notes)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import Max, Q

from channels_app.models import Channel, ChannelKind
from conversations.events import message_payload
from conversations.models import ContactIdentity, Conversation, Message, Participant
from hub.exceptions import NotFoundError, TenantSuspended
from tenants.models import Tenant
from tenants.selectors import tenant_get_by_slug
from webchat.frames import visitor_message
from webchat.tokens import VisitorClaims

REPLAY_PAGE = 200


class NoSuchChat(NotFoundError):
    default_detail = "No such web chat."


def webchat_tenant_get(*, slug: str) -> Tenant:
    """The tenant of a web chat URL. Unknown: the same 404 as an unknown channel."""
    tenant = tenant_get_by_slug(slug=slug)
    if tenant is None:
        raise NoSuchChat()
    if not tenant.is_active:
        raise TenantSuspended()
    return tenant


def webchat_channel_get(*, channel_token: str) -> Channel:
    """An enabled web chat channel of the current schema by its token; anything else (unknown,
    another kind, disabled) is the one 404, so a URL reveals nothing about what exists."""
    channel = (
        Channel.objects.select_related("agent")
        .filter(channel_token=channel_token, kind=ChannelKind.WEBCHAT, enabled=True)
        .first()
    )
    if channel is None:
        raise NoSuchChat()
    return channel


def webchat_demo_channel_get() -> Channel | None:
    """The channel the demo page shows: the tenant's first enabled web chat."""
    return (
        Channel.objects.filter(kind=ChannelKind.WEBCHAT, enabled=True)
        .order_by("created_at")
        .first()
    )


def origin_normalise(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def origin_allowed(*, channel: Channel, origin: str | None) -> bool:
    """Whether a browser page at `origin` may embed the channel's chat. No Origin header (not a
    browser) is refused: the widget always runs in one."""
    if not origin:
        return False
    allowed = channel.config.get("allowed_origins") or []
    return origin_normalise(origin) in {origin_normalise(item) for item in allowed}


def channel_appearance(channel: Channel) -> dict[str, str]:
    """What the widget shows before anyone answers: the channel's title and colour."""
    return {
        "title": str(channel.config.get("title") or channel.name),
        "color": str(channel.config.get("color") or "#2563eb"),
    }


@dataclass(frozen=True)
class VisitorContext:
    """What a visitor's socket keeps for its whole life, loaded once on connect."""

    schema: str
    conversation_id: uuid.UUID
    contact_id: uuid.UUID
    contact_name: str
    allowed_origins: tuple[str, ...]
    last_seq: int


def visitor_context_get(*, claims: VisitorClaims) -> VisitorContext | None:
    """The conversation a token names, if it still belongs to the token's visitor on an enabled
    web chat channel; None otherwise (the socket closes with 4401). Run in the token's schema."""
    conversation = (
        Conversation.objects.select_related("channel", "contact")
        .filter(
            pk=claims.conversation_id,
            channel_id=claims.channel_id,
            channel__kind=ChannelKind.WEBCHAT,
            channel__enabled=True,
        )
        .first()
    )
    if conversation is None:
        return None
    owns = ContactIdentity.objects.filter(
        channel_kind=ChannelKind.WEBCHAT,
        external_id=claims.visitor_id,
        contact_id=conversation.contact_id,
    ).exists()
    if not owns:
        return None
    origins = conversation.channel.config.get("allowed_origins") or []
    return VisitorContext(
        schema=claims.schema,
        conversation_id=conversation.pk,
        contact_id=conversation.contact_id,
        contact_name=conversation.contact.name,
        allowed_origins=tuple(origin_normalise(origin) for origin in origins),
        last_seq=conversation.last_seq,
    )


def answering_get(*, conversation_id: uuid.UUID) -> dict[str, Any]:
    """Who answers the visitor now: the AI (with the agent's name) while it is active, else the
    assigned operator (with their display name), else nobody yet. `ai_active` and
    `operator_id` are what it was decided from, to notice when it changes."""
    conversation = (
        Conversation.objects.select_related("channel__agent", "assignee")
        .filter(pk=conversation_id)
        .first()
    )
    if conversation is None:
        return {"who": "operator", "name": "", "ai_active": False, "operator_id": None}
    agent = conversation.channel.agent
    assignee = conversation.assignee
    basis = {
        "ai_active": conversation.ai_active,
        "operator_id": str(assignee.pk) if assignee else None,
    }
    if conversation.ai_active and agent is not None:
        return {"who": "ai", "name": agent.name, **basis}
    return {"who": "operator", "name": assignee.display_name if assignee else "", **basis}


def read_positions_get(*, conversation_id: uuid.UUID, contact_id: uuid.UUID) -> tuple[int, int]:
    """How far the team has read (the furthest of its operators) and how far the visitor has."""
    positions = Participant.objects.filter(conversation_id=conversation_id).aggregate(
        team=Max("last_read_seq", filter=Q(operator__isnull=False)),
        visitor=Max("last_read_seq", filter=Q(contact_id=contact_id)),
    )
    return int(positions["team"] or 0), int(positions["visitor"] or 0)


@dataclass(frozen=True)
class ReplayPage:
    messages: list[dict[str, Any]]
    # The highest seq the page covered, private notes included (skipped, not waited for).
    covered: int
    more: bool


def visitor_messages_after(
    *, schema: str, conversation_id: uuid.UUID, after_seq: int, limit: int = REPLAY_PAGE
) -> ReplayPage:
    """One page of the messages after `after_seq`, in seq order, in the visitor's shape; the
    caller pages on from `covered` while there is `more`."""
    rows = list(
        Message.objects.filter(conversation_id=conversation_id, seq__gt=after_seq)
        .select_related("sender_operator")
        .prefetch_related("attachments")
        .order_by("seq")[:limit]
    )
    visible = [
        visitor_message(message_payload(message), schema=schema)
        for message in rows
        if not message.is_private
    ]
    return ReplayPage(
        messages=visible, covered=rows[-1].seq if rows else after_seq, more=len(rows) == limit
    )


def visitor_message_get(*, conversation_id: uuid.UUID, message_id: str) -> Message | None:
    """A message of the conversation the visitor may see, for a read receipt."""
    try:
        uuid.UUID(message_id)
    except ValueError:
        return None
    return Message.objects.filter(
        conversation_id=conversation_id, pk=message_id, is_private=False
    ).first()
