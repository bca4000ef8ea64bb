"""Settings shared by every environment; each value comes from the environment (CONTRACT §2)."""

from __future__ import annotations

import functools
import sys
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from hub import env
from hub.shards import DEFAULT_QUEUE, OwnShardFirst, TenantShardRouter, shard_queue, shard_queues

BASE_DIR = env.BASE_DIR
VAR_DIR = env.var_dir()

# local.py and test.py fill these from var/ when unset; production.py refuses to start without.
SECRET_KEY = env.env_str("HUB_SECRET_KEY")
DEBUG = env.env_bool("HUB_DEBUG", False)
ALLOWED_HOSTS = env.env_list("HUB_ALLOWED_HOSTS", "localhost,127.0.0.1")
HUB_PUBLIC_URL = env.env_str("HUB_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env.env_list("HUB_CSRF_TRUSTED_ORIGINS", HUB_PUBLIC_URL)

# Encryption at rest: the first key encrypts, every key decrypts, so keys can be rotated.
HUB_FIELD_KEYS = env.env_list("HUB_FIELD_KEYS")

_database_url = env.service_url("DATABASE_URL")
_redis_url = env.service_url("REDIS_URL")
if not _database_url or not _redis_url:
    # Commands that need neither (help, makemigrations --check) still work; those that do fail
    # on connect, and manage.py has already said why.
    _database_url = _database_url or "postgres://postgres@127.0.0.1:1/hub"
    _redis_url = _redis_url or "redis://127.0.0.1:1/0"
REDIS_URL: str = _redis_url

# django-tenants' backend, sending `SET search_path` only when a session has another path
# (hub.postgresql.tenants), built on hub.postgresql's, whose pool hands out the connection
# given back last (docs/performance.md, changes 54 and 60).
ORIGINAL_BACKEND = "hub.postgresql"
DATABASES = {
    "default": dj_database_url.parse(
        _database_url,
        engine="hub.postgresql.tenants",
        conn_max_age=env.env_int("HUB_DB_CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.env_int(
    "HUB_DB_CONNECT_TIMEOUT", 5
)


def database_pool_configure(*, default_max_size: int) -> bool:
    """A psycopg pool per process, of HUB_DB_POOL_MAX_SIZE connections (else `default_max_size`;
    0: none, each thread keeps a connection of its own). Returns whether there is one. Its
    connections are shared by the process's threads: a thread holds one only while it works
    on the database, and gives it back while it waits on a model (hub.db)."""
    max_size = env.env_int("HUB_DB_POOL_MAX_SIZE", default_max_size)
    if max_size <= 0:
        return False
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them instead
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env.env_int("HUB_DB_POOL_MIN_SIZE", 1),
        "max_size": max_size,
        # A request waits this long for a free connection before failing with a 503.
        "timeout": float(env.env_str("HUB_DB_POOL_TIMEOUT_SECONDS", "10")),
    }
    return True


# Statements go to PostgreSQL with their values apart, and each connection prepares those it
# runs five times: PostgreSQL parses (and, with a generic plan, plans) them once instead of on
# every run, 7 % of its CPU and of the workers' per answered message (docs/performance.md,
# change 53). The API's list page is prepared at once (hub.db, `KeptPlanQuery`). Off behind a
# pooler that cannot follow a prepared statement (the tenants' `search_path` already needs a
# pooler to keep sessions: README).
HUB_DB_PREPARED_STATEMENTS = env.env_bool("HUB_DB_PREPARED_STATEMENTS", True)
if HUB_DB_PREPARED_STATEMENTS:
    DATABASES["default"]["OPTIONS"]["server_side_binding"] = True
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = 5

DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Tenancy. The public schema holds tenants, domains, API keys and the platform's own users;
# everything a tenant owns lives in its schema. Deciding an app's side later is a painful migration.
SHARED_APPS = [
    "django_tenants",
    "tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.admin",
    "agents",
    "channels_app",
    "conversations",
    "billing",
    "extraction",
    "jobs",
    "webhooks",
    "knowledge",
    "processing",
    "webchat",
    "inbox",
    "retention",
    "automation",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]
TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
# New schemas are copied from this migrated template instead of replaying every migration
# (tenants.schema_clone; `Tenant.create_schema` then applies what the template may lack).
TENANT_CREATION_FAKES_MIGRATIONS = True
TENANT_BASE_SCHEMA = "_template"
# `migrate_schemas` leaves out the schemas that already have every migration.
GET_EXECUTOR_FUNCTION = "tenants.migration_executor.get_executor"
# One `SET search_path` per request instead of one per query.
TENANT_LIMIT_SET_CALLS = True
HUB_TENANT_PREFIX = "t"

MIDDLEWARE = [
    "hub.middleware.RequestIdMiddleware",
    "hub.middleware.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "hub.middleware.MetricsMiddleware",
    "tenants.middleware.TenantRoutingMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# Tenant pages (admin, inbox) resolve through this; `/t/<slug>/` prefixes it, a tenant domain not.
ROOT_URLCONF = "hub.tenant_urls"
PUBLIC_SCHEMA_URLCONF = "hub.urls"
ASGI_APPLICATION = "hub.asgi.application"
# Threads per web process serving HTTP (hub/asgi_http.py); keep it within the database pool.
HUB_WEB_THREADS = env.env_int("HUB_WEB_THREADS", 8)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# Set where `collectstatic` runs (production); locally files are served from the apps.
STATIC_ROOT = env.env_str("HUB_STATIC_ROOT") or None
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media/"

# Attachments go through Django's storage API: the filesystem under var/media by default, any
# S3-compatible bucket when HUB_S3_BUCKET is set (install the `s3` extra).
if env.env_str("HUB_S3_BUCKET"):
    _default_storage: dict[str, Any] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.env_str("HUB_S3_BUCKET"),
            "endpoint_url": env.env_str("HUB_S3_ENDPOINT_URL") or None,
            "region_name": env.env_str("HUB_S3_REGION") or None,
            "access_key": env.env_str("HUB_S3_ACCESS_KEY_ID") or None,
            "secret_key": env.env_str("HUB_S3_SECRET_ACCESS_KEY") or None,
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Webhook bodies are capped by the channels app itself; this guards every other endpoint.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024


def redis_backed_settings(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cache and the channel layer on one Redis URL."""
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_FUNCTION": "django_tenants.cache.make_key",
            "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    # Redis pub/sub publishes a group message once per group; channels_redis' default layer
    # (`HUB_CHANNEL_LAYER=core`) queues it once per member socket, with a capacity and an expiry
    # per socket: at 10,000 sockets it fell a minute behind and dropped 14 % of the frames, where
    # pub/sub delivered all of them (docs/performance.md). Pushes are at most once either way:
    # sockets replay what they missed when they resume.
    layer = "pubsub.RedisPubSubChannelLayer"
    if env.env_str("HUB_CHANNEL_LAYER", "pubsub") == "core":
        layer = "core.RedisChannelLayer"
    # Redis pub/sub channels are global to the server, not per database: the database number is
    # in the prefix, so two hubs (or two test workers) on one Redis never hear each other.
    database = urlsplit(url).path.strip("/") or "0"
    channel_layers = {
        "default": {
            "BACKEND": f"channels_redis.{layer}",
            # A consumer waits on Redis in blocking pops of 5 s; redis-py's default read
            # timeout is also 5 s, which killed every socket idle that long.
            "CONFIG": {
                "hosts": [{"address": url, "socket_timeout": 30, "socket_connect_timeout": 2}],
                "prefix": f"hub:asgi:{database}",
            },
        }
    }
    return caches, channel_layers


CACHES, CHANNEL_LAYERS = redis_backed_settings(REDIS_URL)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["tenants.throttling.ApiKeyRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["hub.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "hub.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "hub.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
# Requests per minute for one API key, unless the key names its own limit.
HUB_API_RATE_PER_MINUTE = env.env_int("HUB_API_RATE_PER_MINUTE", 600)

SPECTACULAR_SETTINGS = {
    "TITLE": "Hub API",
    "DESCRIPTION": (
        "Multi-tenant omnichannel conversation hub. Authenticate with "
        "`Authorization: Bearer <api_key>`; the key decides the tenant. Every error has the shape "
        '`{"error": {"code", "message", "details"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Names for choice sets whose field names other resources use too.
    "ENUM_NAME_OVERRIDES": {
        "TaskStatusEnum": "automation.models.Task.Status",
        "TaskPriorityEnum": "automation.models.Task.Priority",
        "AssessmentRunStatusEnum": "automation.models.AssessmentRun.Status",
    },
}

# Celery: JSON only, acknowledged after the work so a killed worker loses nothing.
CELERY_BROKER_URL = env.env_str("CELERY_BROKER_URL") or REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
    "visibility_timeout": 3600,
    "socket_connect_timeout": 2,
}
# Publishing gives up fast: a webhook with Redis down must still answer at once (the event is
# already committed; the sweeper enqueues it later).
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.1,
    "interval_max": 0.1,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's pool: prefork (a process per task at once, as many as cores) unless
# HUB_WORKER_POOL=threads, for worker machines whose load is answers waiting on a slow model:
# a waiting thread costs little where a prefork child costs over a hundred megabytes. Threads
# on cores the web processes share starve them when the CPU is the limit; docs/performance.md,
# change 38, has both measured. With threads, each thread keeps a database connection, and
# CELERY_TASK_TIME_LIMIT is not enforced (every call out of a task has its own timeout).
CELERY_WORKER_POOL = env.env_str("HUB_WORKER_POOL", "prefork")
CELERY_WORKER_CONCURRENCY = env.env_int("HUB_WORKER_CONCURRENCY", 0) or None
# A queue per kind of work, so a burst of one never holds up the others: a worker takes from
# each queue with work in turn. Without them, an operator's reply, an integrator's webhook or a
# minute's periodic jobs waited behind every inbound message queued before them. Workers consume
# every queue listed here unless given `-Q`. Tasks not named below go to the default queue.
CELERY_TASK_DEFAULT_QUEUE = DEFAULT_QUEUE
# Tenant shards (hub/shards.py): the default queue's tasks of a tenant go to one of
# HUB_TENANT_SHARDS queues, and a worker started with HUB_WORKER_SHARD takes from that shard's
# first, so each tenant meets a few worker processes rather than all of them. Every process,
# web and worker, must be given the same count.
HUB_TENANT_SHARDS = env.env_int("HUB_TENANT_SHARDS", 1)
_worker_shard = env.env_str("HUB_WORKER_SHARD")
HUB_WORKER_SHARD = int(_worker_shard) if _worker_shard else None
if HUB_TENANT_SHARDS < 1:
    raise ImproperlyConfigured("HUB_TENANT_SHARDS must be 1 or more.")
if HUB_WORKER_SHARD is not None and not 0 <= HUB_WORKER_SHARD < HUB_TENANT_SHARDS:
    raise ImproperlyConfigured(
        f"HUB_WORKER_SHARD must be one of 0 to {HUB_TENANT_SHARDS - 1} (HUB_TENANT_SHARDS), "
        "or unset."
    )
# Each bound by its own name: a queue given none would be bound by the default queue's, and
# every task sent there would be copied into it.
CELERY_TASK_QUEUES = [
    Queue(name, routing_key=name)
    for name in (*shard_queues(HUB_TENANT_SHARDS), "replies", "webhooks", "jobs")
]
CELERY_TASK_ROUTES = (
    {
        "channels.message_deliver": {"queue": "replies"},
        "automation.reminder_deliver": {"queue": "replies"},
        "processing.reply_charge_settle": {"queue": "replies"},
        "webhooks.delivery_attempt": {"queue": "webhooks"},
        "jobs.*": {"queue": "jobs"},
    },
    TenantShardRouter(count=HUB_TENANT_SHARDS),
)
if HUB_WORKER_SHARD is not None:
    CELERY_BROKER_TRANSPORT_OPTIONS["queue_order_strategy"] = functools.partial(
        OwnShardFirst, own=shard_queue(HUB_WORKER_SHARD), shards=shard_queues(HUB_TENANT_SHARDS)
    )

# Providers' APIs (CONTRACT §2): tests point each at a fake server on 127.0.0.1.
HUB_META_GRAPH_URL = env.env_str("HUB_META_GRAPH_URL", "https://graph.facebook.com/v22.0")
HUB_TELEGRAM_API_URL = env.env_str("HUB_TELEGRAM_API_URL", "https://api.telegram.org")
HUB_SLACK_API_URL = env.env_str("HUB_SLACK_API_URL", "https://slack.com/api")
HUB_TWILIO_API_URL = env.env_str("HUB_TWILIO_API_URL", "https://api.twilio.com")
HUB_ELEVENLABS_API_URL = env.env_str("HUB_ELEVENLABS_API_URL", "https://api.elevenlabs.io")
HUB_PROVIDER_TIMEOUT_SECONDS = float(env.env_str("HUB_PROVIDER_TIMEOUT_SECONDS", "10"))
# Uploads and fetched media are stored as attachments up to this size (media fetched from a
# provider: the smaller of this and HUB_MEDIA_MAX_BYTES).
HUB_ATTACHMENT_MAX_BYTES = env.env_int("HUB_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024)
HUB_MEDIA_MAX_BYTES = env.env_int("HUB_MEDIA_MAX_BYTES", 16 * 1024 * 1024)  # inbound media fetched
# Outbound delivery: attempts before a message lands in the dead-letter list, and the backoff.
HUB_DELIVERY_MAX_ATTEMPTS = env.env_int("HUB_DELIVERY_MAX_ATTEMPTS", 8)
HUB_DELIVERY_BACKOFF_BASE_SECONDS = float(env.env_str("HUB_DELIVERY_BACKOFF_BASE_SECONDS", "2"))
HUB_DELIVERY_BACKOFF_MAX_SECONDS = float(env.env_str("HUB_DELIVERY_BACKOFF_MAX_SECONDS", "600"))

# Credits: what an AI reply costs, plus its tokens (per thousand), unless a tenant overrides it.
HUB_CREDITS_PER_REPLY = env.env_int("HUB_CREDITS_PER_REPLY", 1)
HUB_CREDITS_PER_1K_TOKENS = env.env_int("HUB_CREDITS_PER_1K_TOKENS", 0)
# Below this balance operators are notified and `credits.low` is sent, once per crossing (a
# tenant may set its own threshold).
HUB_CREDITS_LOW_BALANCE = env.env_int("HUB_CREDITS_LOW_BALANCE", 20)

LOG_LEVEL = env.env_str("HUB_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "hub.logging.RequestIdFilter"}},
    "formatters": {"json": {"()": "hub.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": sys.stderr,
            "formatter": "json",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.server": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
    },
}

# Outgoing webhooks (docs/webhooks.md). A tenant chooses the URL, so by default it may only
# reach public addresses (SSRF): private networks are for a self-hosted hub whose integrators
# share its LAN, loopback for a receiver on the same machine (development, tests).
HUB_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = env.env_bool("HUB_WEBHOOKS_ALLOW_PRIVATE_NETWORKS", False)
HUB_WEBHOOKS_ALLOW_LOOPBACK = env.env_bool("HUB_WEBHOOKS_ALLOW_LOOPBACK", False)
# Seconds to connect, and to wait for each read of the answer, per attempt.
HUB_WEBHOOKS_TIMEOUT_SECONDS = env.env_int("HUB_WEBHOOKS_TIMEOUT_SECONDS", 10)
# Retries: full-jitter exponential backoff from the base up to the cap between two attempts,
# for as long as the window (counted from the first attempt) lasts; then the delivery is dead.
HUB_WEBHOOKS_RETRY_BASE_SECONDS = env.env_int("HUB_WEBHOOKS_RETRY_BASE_SECONDS", 10)
HUB_WEBHOOKS_RETRY_MAX_INTERVAL_SECONDS = env.env_int(
    "HUB_WEBHOOKS_RETRY_MAX_INTERVAL_SECONDS", 3600
)
HUB_WEBHOOKS_RETRY_WINDOW_SECONDS = env.env_int("HUB_WEBHOOKS_RETRY_WINDOW_SECONDS", 24 * 3600)

# The LLM (CONTRACT §2, §6): any OpenAI-compatible endpoint. No key: the offline responder answers.
OPENAI_API_KEY = env.env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env.env_str("OPENAI_BASE_URL")
HUB_LLM_MODEL = env.env_str("HUB_LLM_MODEL", "gpt-4.1-mini")
# For calls made without an agent (an agent names its own mode).
HUB_LLM_API_MODE = env.env_str("HUB_LLM_API_MODE", "responses")
HUB_LLM_TIMEOUT_SECONDS = float(env.env_str("HUB_LLM_TIMEOUT_SECONDS", "30"))
HUB_LLM_MAX_RETRIES = env.env_int("HUB_LLM_MAX_RETRIES", 2)
HUB_LLM_BACKOFF_BASE_SECONDS = float(env.env_str("HUB_LLM_BACKOFF_BASE_SECONDS", "0.5"))
HUB_LLM_BACKOFF_MAX_SECONDS = float(env.env_str("HUB_LLM_BACKOFF_MAX_SECONDS", "8"))
# A longer Retry-After is not slept through inside a worker: the call gives up and falls back.
HUB_LLM_RETRY_AFTER_MAX_SECONDS = float(env.env_str("HUB_LLM_RETRY_AFTER_MAX_SECONDS", "10"))
# The per-tenant circuit breaker: consecutive failures to open it, seconds it stays open.
HUB_LLM_BREAKER_THRESHOLD = env.env_int("HUB_LLM_BREAKER_THRESHOLD", 5)
HUB_LLM_BREAKER_COOLDOWN_SECONDS = float(env.env_str("HUB_LLM_BREAKER_COOLDOWN_SECONDS", "30"))
# How long a worker answering a conversation (renewed with each message it answers), or
# extracting its lead, holds it: one that dies holding it holds it this long, then the
# conversation goes to another. Work that outlasts it may be done twice, by it and the next
# holder; only one result is written.
HUB_CONVERSATION_LEASE_SECONDS = env.env_int("HUB_CONVERSATION_LEASE_SECONDS", 120)

# Knowledge search (docs/handlers.md): chunks embedded into pgvector where the extension exists,
# PostgreSQL full text otherwise or when vector search is switched off.
HUB_EMBEDDING_MODEL = env.env_str("HUB_EMBEDDING_MODEL", "text-embedding-3-small")
HUB_EMBEDDING_DIMENSIONS = env.env_int("HUB_EMBEDDING_DIMENSIONS", 1536)
HUB_KNOWLEDGE_VECTOR_SEARCH = env.env_bool("HUB_KNOWLEDGE_VECTOR_SEARCH", True)
# Cosine similarity (0..1) below which a chunk is not an answer.
HUB_KNOWLEDGE_MIN_SIMILARITY = float(env.env_str("HUB_KNOWLEDGE_MIN_SIMILARITY", "0.3"))
HUB_KNOWLEDGE_CHUNK_CHARS = env.env_int("HUB_KNOWLEDGE_CHUNK_CHARS", 1200)

# Lead extraction (docs/extraction.md): a conversation is extracted once it has been quiet this
# long (a tenant may choose 5-15 minutes), at this price in credits plus its tokens (per
# thousand, HUB_CREDITS_PER_1K_TOKENS); failed runs are retried with this backoff, and this many
# failures in a row for a tenant notify its operators.
HUB_EXTRACTION_IDLE_MINUTES = env.env_int("HUB_EXTRACTION_IDLE_MINUTES", 10)
HUB_CREDITS_PER_EXTRACTION = env.env_int("HUB_CREDITS_PER_EXTRACTION", 1)
HUB_EXTRACTION_BACKOFF_BASE_SECONDS = env.env_int("HUB_EXTRACTION_BACKOFF_BASE_SECONDS", 60)
HUB_EXTRACTION_BACKOFF_MAX_SECONDS = env.env_int("HUB_EXTRACTION_BACKOFF_MAX_SECONDS", 3600)
HUB_EXTRACTION_MAX_ATTEMPTS = env.env_int("HUB_EXTRACTION_MAX_ATTEMPTS", 5)
HUB_EXTRACTION_FAILURES_TO_NOTIFY = env.env_int("HUB_EXTRACTION_FAILURES_TO_NOTIFY", 3)
# The most transcript characters one extraction sends to the model (the newest are kept).
HUB_EXTRACTION_MAX_INPUT_CHARS = env.env_int("HUB_EXTRACTION_MAX_INPUT_CHARS", 20000)
# The region for phone numbers written without a country code (ISO 3166 alpha-2; empty: such
# numbers are dropped as ambiguous).
HUB_EXTRACTION_DEFAULT_REGION = env.env_str("HUB_EXTRACTION_DEFAULT_REGION", "")
# Named in the OpenAPI schema: other resources have a `type` too.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] = {
    **SPECTACULAR_SETTINGS.get("ENUM_NAME_OVERRIDES", {}),  # type: ignore[dict-item]
    "ExtractionFieldTypeEnum": "extraction.models.ExtractionField.Type",
}

# Data retention (docs/retention.md): soft-deleted messages are hard-deleted (with their files)
# after this audit window.
HUB_RETENTION_AUDIT_DAYS = env.env_int("HUB_RETENTION_AUDIT_DAYS", 7)
