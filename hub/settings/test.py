"""The test suite: the servers `make test` was given, one Redis database per xdist worker."""

import os
from urllib.parse import urlsplit, urlunsplit

from hub.settings.base import REDIS_URL as _BASE_REDIS_URL
from hub.settings.local import *  # noqa: F403

# xdist workers share one Redis server; each gets its own database, counted on from the one in
# REDIS_URL, so queues never cross (nor do those of two suites given different databases).
_worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_base = urlsplit(_BASE_REDIS_URL)
_redis_db = (int(_base.path.strip("/") or 0) + 1 + _worker) % 16
REDIS_URL = urlunsplit(_base._replace(path=f"/{_redis_db}"))
CACHES, CHANNEL_LAYERS = redis_backed_settings(REDIS_URL)  # noqa: F405
CELERY_BROKER_URL = REDIS_URL

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
HUB_PUBLIC_URL = "http://testserver"
ALLOWED_HOSTS = ["*"]
# Suspensions and new domains must show at once in tests.
HUB_TENANT_CACHE_SECONDS = 0
# Webhook receivers in tests are http.servers on 127.0.0.1; other private ranges stay refused.
HUB_WEBHOOKS_ALLOW_LOOPBACK = True
# Tests reach fake servers only: a developer's real key must never make them call OpenAI. A
# test hands a fake key to the workers it starts through HUB_TEST_OPENAI_API_KEY.
OPENAI_API_KEY = os.environ.get("HUB_TEST_OPENAI_API_KEY", "")
