"""Production: real servers, a real secret, nothing generated on the fly."""

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
DATABASES["default"]["CONN_MAX_AGE"] = env.env_int("HUB_DB_CONN_MAX_AGE", 60)  # noqa: F405
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
