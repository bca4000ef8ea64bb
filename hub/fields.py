"""Encryption at rest for credentials: Fernet with the `HUB_FIELD_KEYS` keys.

The first key encrypts, every key decrypts, so a key is rotated by putting the new one first and
running `manage.py rotate_field_keys` before the old one is dropped.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("HUB_FIELD_KEYS holds no key.")
    return MultiFernet([Fernet(key.encode()) for key in keys])


def field_fernet() -> MultiFernet:
    return _fernet(tuple(settings.HUB_FIELD_KEYS))


def encrypt_text(plaintext: str) -> str:
    return field_fernet().encrypt(plaintext.encode()).decode()


def decrypt_text(token: str) -> str:
    try:
        return field_fernet().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with any key in HUB_FIELD_KEYS."
        ) from error


def reencrypt_text(token: str) -> str:
    """The same secret under the first (current) key."""
    return field_fernet().rotate(token.encode()).decode()


def encrypted_fields_rotate(model: type[models.Model]) -> int:
    """Re-encrypts every encrypted column of `model` in the current schema under the first key.

    Works on the stored tokens, so values are never decoded into Python and written back.
    """
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    assert model._meta.pk is not None
    pk = quote(str(model._meta.pk.column))
    rotated = 0
    for field in model._meta.concrete_fields:
        if not isinstance(field, EncryptedJSONField):
            continue
        column = quote(str(field.column))
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {pk}, {column} FROM {table} WHERE {column} IS NOT NULL")  # noqa: S608
            for row_pk, token in cursor.fetchall():
                fresh = reencrypt_text(token)
                if fresh != token:
                    cursor.execute(
                        f"UPDATE {table} SET {column} = %s WHERE {pk} = %s",  # noqa: S608
                        [fresh, row_pk],
                    )
                    rotated += 1
    return rotated


class EncryptedJSONField(models.TextField):
    """A JSON value stored as a Fernet token; the database column never holds the plaintext."""

    _pyi_private_set_type: Any
    _pyi_private_get_type: Any

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        return json.loads(decrypt_text(value))

    def to_python(self, value: Any) -> Any:
        return value

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return encrypt_text(json.dumps(value, sort_keys=True))

    def value_to_string(self, obj: models.Model) -> str:
        return json.dumps(self.value_from_object(obj))


class EncryptedTextField(EncryptedJSONField):
    """A string stored as a Fernet token (webhook signing secrets and the like).

    It subclasses EncryptedJSONField only so that key rotation, which looks for that class
    (`rotate_field_keys`, `encrypted_fields_rotate`), re-encrypts these columns too; the token
    holds the raw text, not JSON.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        return decrypt_text(value)

    def to_python(self, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        return str(value)

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return encrypt_text(str(value))

    def value_to_string(self, obj: models.Model) -> str:
        value = self.value_from_object(obj)
        return "" if value is None else str(value)
