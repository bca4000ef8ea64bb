"""The events an integrator can subscribe to. A new event is one line here (and its publisher
calling `hub.events.event_publish`); subscriptions validate against this, so no migration."""

from __future__ import annotations

WEBHOOK_EVENTS: dict[str, str] = {
    "message.created": "A message was received from a contact or sent by the hub.",
    "message.updated": "A message changed: delivery status, deletion.",
    "conversation.created": "A conversation was opened.",
    "conversation.updated": "A conversation's status, assignee, priority or labels changed.",
    "contact.created": "A contact was created.",
    "lead.extracted": "A conversation's lead was extracted (a new version, with what changed).",
    "credits.low": "The credit balance fell below the tenant's low-balance threshold.",
}
