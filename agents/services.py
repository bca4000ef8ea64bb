"""Writes on AI agents."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from agents.models import Agent

EDITABLE_FIELDS = (
    "name",
    "instructions",
    "model",
    "prompt_id",
    "prompt_variables",
    "temperature",
    "language",
    "persona",
    "handoff_keywords",
    "handoff_confidence_threshold",
    "fallback_reply",
    "api_mode",
    "context_window_messages",
    "context_summary_every",
    "context_idle_reset_minutes",
    "handoff_on_negative_sentiment",
    "assignment_strategy",
)


@transaction.atomic
def agent_create(*, name: str, **fields: Any) -> Agent:
    agent = Agent(name=name, **{key: fields[key] for key in EDITABLE_FIELDS if key in fields})
    agent.full_clean()
    agent.save()
    return agent


@transaction.atomic
def agent_update(*, agent: Agent, **fields: Any) -> Agent:
    changed = [key for key in EDITABLE_FIELDS if key in fields]
    for key in changed:
        setattr(agent, key, fields[key])
    agent.full_clean()
    agent.save(update_fields=[*changed, "updated_at"])
    return agent
