"""Encryption at rest for credentials: Fernet with the `HUB_FIELD_KEYS` keys.

The first key encrypts, every key decrypts, so a key is rotated by putting the new one first and
running `manage.py rotate_field_keys` before the old one is dropped. That command re-encrypts
every `TokenColumn`: the credentials here and the message bodies of the tenants that encrypt
them (`retention.encryption`).
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models, transaction

logger = logging.getLogger(__name__)


@functools.cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("HUB_FIELD_KEYS holds no key.")
    return MultiFernet([Fernet(key.encode()) for key in keys])


def field_fernet() -> MultiFernet:
    return _fernet(tuple(settings.HUB_FIELD_KEYS))


def encrypt_text(plaintext: str) -> str:
    return field_fernet().encrypt(plaintext.encode()).decode()


UNREADABLE = "A stored secret cannot be decrypted with any key in HUB_FIELD_KEYS."


def decrypt_text(token: str) -> str:
    try:
        return field_fernet().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise ImproperlyConfigured(UNREADABLE) from error


@functools.cache
def _first_fernet(keys: tuple[str, ...]) -> Fernet:
    return Fernet(keys[0].encode())


def token_rotate(token: str) -> str | None:
    """The same plaintext under the first (current) key, or None when `token` is under it
    already. Raises InvalidToken when no key decrypts it."""
    keys = tuple(settings.HUB_FIELD_KEYS)
    every_key = _fernet(keys)
    try:
        _first_fernet(keys).decrypt(token.encode())
    except InvalidToken:
        return every_key.rotate(token.encode()).decode()
    return None


class TokenColumn:
    """A field whose column holds Fernet tokens that key rotation re-encrypts in place
    (`encrypted_fields_rotate`). Subclasses say where the tokens are in the stored value."""

    # True: every value the predicate selects is a token we wrote, and one that no key
    # decrypts is an error. False: a stored value may merely look like a token (a customer's
    # text), and is then left alone.
    tokens_only = True

    def token_sql(self, column: str) -> tuple[str, str, str]:
        """SQL for `column` (quoted): the token's expression, the predicate of the rows that
        hold one, and the expression that writes a fresh token given as the one parameter."""
        return column, f"{column} IS NOT NULL", "%s"


# Rows per read on rotation: a column may hold large values (raw inbound mails).
ROTATE_BATCH = 100


def encrypted_fields_rotate(model: type[models.Model]) -> int:
    """Re-encrypts every token column of `model` in the current schema under the first key.

    Works on the stored tokens, a batch of rows at a time (in primary-key order, each batch
    written in one transaction), so values are never decoded into Python models and written
    back, and tokens already under the first key are left as they are. Returns how many
    values it rewrote.
    """
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    assert model._meta.pk is not None
    pk = quote(str(model._meta.pk.column))
    rotated = 0
    for field in model._meta.concrete_fields:
        if not isinstance(field, TokenColumn):
            continue
        column = quote(str(field.column))
        token, holds_token, write = field.token_sql(column)
        select = f"SELECT {pk}, {token} FROM {table} WHERE {holds_token}"  # noqa: S608
        update = f"UPDATE {table} SET {column} = {write} WHERE {pk} = %s"  # noqa: S608
        after: Any = None
        unreadable = 0
        while True:
            with connection.cursor() as cursor:
                if after is None:
                    cursor.execute(f"{select} ORDER BY {pk} LIMIT {ROTATE_BATCH}")
                else:
                    cursor.execute(
                        f"{select} AND {pk} > %s ORDER BY {pk} LIMIT {ROTATE_BATCH}", [after]
                    )
                rows = cursor.fetchall()
            if not rows:
                break
            after = rows[-1][0]
            fresh: list[tuple[str, Any]] = []
            for row_pk, stored in rows:
                try:
                    new = token_rotate(stored)
                except InvalidToken as error:
                    if field.tokens_only:
                        raise ImproperlyConfigured(UNREADABLE) from error
                    unreadable += 1
                    continue
                if new is not None:
                    fresh.append((new, row_pk))
            if fresh:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.executemany(update, fresh)
                rotated += len(fresh)
        if unreadable:
            # Text that only looks like a token, or a token whose key was already dropped.
            logger.warning(
                "values no key decrypts were left as they are",
                extra={"table": model._meta.db_table, "column": field.column, "count": unreadable},
            )
    return rotated


class EncryptedJSONField(TokenColumn, models.TextField):
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
    """A string stored as a Fernet token (webhook signing secrets and the like); the token
    holds the raw text, not JSON."""

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
