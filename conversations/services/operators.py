"""Operators: the tenant's users who answer in the inbox."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from conversations.models import Operator


@transaction.atomic
def operator_create(
    *,
    user: User,
    display_name: str,
    role: str = Operator.Role.OPERATOR,
    capacity: int = 10,
) -> Operator:
    return Operator.objects.create(
        user=user, display_name=display_name, role=role, capacity=capacity
    )


@transaction.atomic
def operator_set_availability(*, operator: Operator, availability: str) -> Operator:
    operator.availability = availability
    operator.save(update_fields=["availability"])
    return operator
