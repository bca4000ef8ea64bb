"""Production: real servers, a real secret, nothing generated on the fly."""

import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from hub import env
from hub.settings.base import *  # noqa: F403

_secret = env.env_str("HUB_SECRET_KEY")
if len(_secret) < 32 or _secret.startswith("django-insecure") or _secret == "change-me":  # noqa: S105
    raise ImproperlyConfigured(
        "HUB_SECRET_KEY must be set to a random value of at least 32 characters in production."
    )
SECRET_KEY = _secret
if not env.env_str("HUB_FIELD_KEYS"):
    raise ImproperlyConfigured(
        "HUB_FIELD_KEYS must be set in production: losing a generated key loses the data it "
        "encrypted."
    )
for _name in ("DATABASE_URL", "REDIS_URL"):
    if not env.env_str(_name):
        raise ImproperlyConfigured(f"{_name} must be set in production.")

DEBUG = env.env_bool("HUB_DEBUG", False)
STATIC_ROOT = env.env_str("HUB_STATIC_ROOT") or str(BASE_DIR / "staticfiles")  # noqa: F405
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.env_bool("HUB_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# A web process reaches the database from its HTTP threads (HUB_WEB_THREADS, hub/asgi_http.py)
# and from the threads its sockets' consumers use; Django's connections are per thread. A pool per
# process bounds and reuses them (before it, hundreds of threads each held one, past PostgreSQL's
# max_connections: docs/performance.md); HUB_DB_POOL_MAX_SIZE=0 goes back to one connection per
# thread kept HUB_DB_CONN_MAX_AGE seconds.
# Celery workers with a prefork pool are the exception: its Django fix-up closes a pool after
# every task of a prefork child, so each keeps one persistent connection (checked before every
# task, hub/celery.py). A threads pool's threads share one pool (HUB_WORKER_POOL=threads): a
# thread waiting on the model gives its connection back (docs/performance.md, change 43).
_in_celery = Path(sys.argv[0]).name == "celery" or Path(sys.argv[0]).parent.name == "celery"
_one_per_process = _in_celery and CELERY_WORKER_POOL != "threads"  # noqa: F405
if not database_pool_configure(default_max_size=0 if _one_per_process else 8):  # noqa: F405
    # A Celery worker keeps its connection an hour, not a minute: PostgreSQL caches the catalog
    # entries of every table a connection touches, per tenant schema, and a worker serving many
    # tenants filled them again for each tenant after every reconnect (docs/performance.md,
    # change 35). The price is the backend's memory: about 0.7 MB per tenant served.
    DATABASES["default"]["CONN_MAX_AGE"] = env.env_int(  # noqa: F405
        "HUB_DB_CONN_MAX_AGE", 3600 if _in_celery else 60
    )
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Celery's fix-up closes the connection after every task unless told to reuse it: a reconnect per
# task was a fifth of a worker's time (docs/performance.md). Reused, it is still checked before
# each task like a request's (hub/celery.py), so a restarted PostgreSQL is reconnected to.
# By default the connection's age decides (above): a count of tasks replaced it every minute or
# two on a busy worker.
CELERY_DB_REUSE_MAX = env.env_int("HUB_CELERY_DB_REUSE_MAX", 1_000_000)
