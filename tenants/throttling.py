"""Per-key request limits in Redis, shared by every web process."""

from __future__ import annotations

import logging
import math
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from hub.ratelimit import token_bucket_take
from tenants.models import ApiKey

logger = logging.getLogger(__name__)


class ApiKeyRateThrottle(BaseThrottle):
    """A token bucket per key: its per-minute limit as a burst, refilled evenly over a minute.
    With Redis down it lets requests through: a dead limiter must not take the API down too."""

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True
        limit = api_key.rate_limit_per_minute or settings.HUB_API_RATE_PER_MINUTE
        try:
            decision = token_bucket_take(
                key=f"hub:throttle:api-key:{api_key.pk}", capacity=limit, per_seconds=60
            )
        except RedisError:
            logger.warning("rate limiter unavailable; request allowed")
            return True
        if not decision.allowed:
            self._wait = decision.retry_after
        return decision.allowed

    def wait(self) -> float | None:
        return max(1, math.ceil(self._wait)) if self._wait is not None else None
