"""A developer's machine: `make run` and `manage.py` beside it."""

from hub.settings.base import *  # noqa: F403
