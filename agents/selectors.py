from __future__ import annotations

import uuid

from django.db.models import QuerySet

from agents.models import Agent
from hub.exceptions import NotFoundError


def agent_list() -> QuerySet[Agent]:
    return Agent.objects.all()


def agent_get(*, agent_id: uuid.UUID | str) -> Agent:
    """The agent in the current tenant's schema; another tenant's id is simply not found."""
    agent = Agent.objects.filter(pk=agent_id).first()
    if agent is None:
        raise NotFoundError("No such agent.")
    return agent
