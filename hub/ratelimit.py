"""A token bucket in Redis, atomic across every process: API keys now, provider sends later."""

from __future__ import annotations

from dataclasses import dataclass

from hub.redis import get_redis

# Redis' own clock, so web processes on different machines agree on the time.
_BUCKET_SCRIPT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local requested = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait = 0
if tokens >= requested then
  tokens = tokens - requested
  allowed = 1
else
  wait = (requested - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 1)
return {allowed, tostring(wait)}
"""


@dataclass(frozen=True)
class BucketDecision:
    allowed: bool
    retry_after: float


def token_bucket_take(
    *, key: str, capacity: int, per_seconds: float, tokens: int = 1
) -> BucketDecision:
    """Takes `tokens` from a bucket holding `capacity` that refills fully every `per_seconds`.

    Raises `redis.RedisError` when Redis is unreachable; callers decide whether to fail open.
    """
    script = get_redis().register_script(_BUCKET_SCRIPT)
    allowed, wait = script(keys=[key], args=[capacity, capacity / per_seconds, tokens])
    return BucketDecision(allowed=bool(int(allowed)), retry_after=float(wait))
