#!/usr/bin/env python
import os
import sys

# Commands that need no database, so no reason to warn.
QUIET_COMMANDS = {"help", "makemigrations", "check", "collectstatic", "spectacular", "version"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings.local")
    from hub import env

    if not env.service_url("DATABASE_URL") and sys.argv[1:2] and sys.argv[1] not in QUIET_COMMANDS:
        print(
            "hub: DATABASE_URL is not set and no `make run` is running here; start `make run` in "
            "another terminal (its embedded servers are found under var/) or set DATABASE_URL "
            "and REDIS_URL.",
            file=sys.stderr,
        )
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
