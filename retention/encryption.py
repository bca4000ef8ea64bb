"""Message bodies encrypted at rest, for the tenants that ask for it (`Tenant.message_encryption`).

The two fields below encrypt on every write (save, `QuerySet.update`, `bulk_create`,
`bulk_update`) while the current tenant has encryption on, and decrypt on every read whatever the
setting, so rows written before a change of the setting stay readable. Every ORM path sees
plaintext (API, admin, processing, exports); the database sees Fernet tokens under
`HUB_FIELD_KEYS` (the first key encrypts, every key decrypts).

What cannot work on ciphertext: PostgreSQL reading the columns itself. Full-text search
(`Message.search_vector` is generated from `text`) and JSON lookups on `content` keys find
nothing in encrypted rows (docs/retention.md).
"""

from __future__ import annotations

import json
import re
from typing import Any

from cryptography.fernet import InvalidToken
from django.db import models

from hub.fields import TokenColumn, decrypt_text, encrypt_text, field_fernet

# `content` is a jsonb column: an encrypted value is stored as this one-key object, still JSON.
ENVELOPE = "$enc"
# A Fernet token: version byte 0x80 and a timestamp, urlsafe base64.
TOKEN = re.compile(r"^gAAAAA[A-Za-z0-9_-]{50,}={0,2}$")


def message_encryption_on() -> bool:
    """Whether the tenant of the current schema stores message bodies encrypted."""
    from tenants.selectors import tenant_current

    try:
        return bool(tenant_current().message_encryption)
    except LookupError:  # the public schema holds no messages
        return False


def _is_expression(value: Any) -> bool:
    return hasattr(value, "resolve_expression")


def is_encrypted_content(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and ENVELOPE in value


class TenantEncryptedJSONField(TokenColumn, models.JSONField):
    """A JSON value stored as `{"$enc": <token>}` while the tenant encrypts messages."""

    def token_sql(self, column: str) -> tuple[str, str, str]:
        return (
            f"{column} ->> '{ENVELOPE}'",
            f"jsonb_typeof({column}) = 'object' AND {column} ? '{ENVELOPE}'",
            f"jsonb_build_object('{ENVELOPE}', %s::text)",
        )

    def get_db_prep_save(self, value: Any, connection: Any) -> Any:
        if value is not None and not _is_expression(value) and message_encryption_on():
            value = {ENVELOPE: encrypt_text(json.dumps(value, cls=self.encoder))}
        return super().get_db_prep_save(value, connection)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        value = super().from_db_value(value, expression, connection)
        if is_encrypted_content(value):
            return json.loads(decrypt_text(value[ENVELOPE]), cls=self.decoder)
        return value


class TenantEncryptedTextField(TokenColumn, models.TextField):
    """A string stored as a Fernet token while the tenant encrypts messages (empty stays empty)."""

    # Plaintext rows hold customers' text, which may look like a token.
    tokens_only = False

    def token_sql(self, column: str) -> tuple[str, str, str]:
        return column, f"{column} ~ '{TOKEN.pattern}'", "%s"

    def get_db_prep_save(self, value: Any, connection: Any) -> Any:
        if isinstance(value, str) and value and message_encryption_on():
            value = encrypt_text(value)
        return super().get_db_prep_save(value, connection)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if isinstance(value, str) and TOKEN.match(value):
            try:
                return field_fernet().decrypt(value.encode()).decode()
            except InvalidToken:
                # A customer's text that merely looks like a token is their text.
                return value
        return value
