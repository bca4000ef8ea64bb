"""A developer's machine: `make run` and `manage.py` beside it."""

from hub import env
from hub.settings.base import *  # noqa: F403
from hub.settings.base import HUB_FIELD_KEYS as _FIELD_KEYS
from hub.settings.base import SECRET_KEY as _SECRET_KEY

SECRET_KEY = _SECRET_KEY or env.generated_secret_key()
HUB_FIELD_KEYS = _FIELD_KEYS or env.generated_field_keys().split(",")
# One connection per thread unless HUB_DB_POOL_MAX_SIZE asks for a pool, as production has.
database_pool_configure(default_max_size=0)  # noqa: F405
