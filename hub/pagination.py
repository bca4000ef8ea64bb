from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from rest_framework import pagination
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

Row = TypeVar("Row")
Position = tuple[Any, ...]


class CursorPagination(pagination.CursorPagination):
    """`{"results": [...], "next": url-or-null}`, newest first unless a view says otherwise.

    DRF filters by a cursor's position as the cursor holds it, so a cursor written by hand (a
    word, a time zone PostgreSQL refuses, a NUL) failed the query: a 500. The position is read
    here as the ordering's field reads a value, and one it refuses is DRF's 404 `Invalid
    cursor`, as an undecodable cursor is."""

    ordering = "-created_at"
    page_size_query_param = "page_size"
    max_page_size = 200
    _model: type[Model] | None = None

    def paginate_queryset(
        self, queryset: QuerySet[Any, Any] | Sequence[Any], request: Request, view: Any = None
    ) -> list[Any] | None:
        self._model = queryset.model if isinstance(queryset, QuerySet) else None
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> pagination.Cursor | None:
        cursor = super().decode_cursor(request)
        if cursor is None or cursor.position is None or self._model is None:
            return cursor
        field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
        try:
            position: Any = _field_position(field, str(cursor.position))
        except (ValidationError, ValueError, OverflowError) as error:
            raise NotFound(self.invalid_cursor_message) from error
        return cursor._replace(position=position)

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "nullable": True, "format": "uri"},
            },
        }


class KeysetCursorPagination(CursorPagination):
    """Pages read by the view's own function, after the position of the last row shown, in the
    order of a unique key (`key_types`: the key's values, in the order's columns).

    DRF's cursor pagination filters, orders and slices a queryset on every page, which the ORM
    then builds and compiles again: most of a list page's CPU besides the rows themselves
    (docs/performance.md, change 46). Here the view reads the page as it likes, a query compiled
    once included, given the position to start after (None for the first page) and how many
    rows to read; the rows after a unique key are one indexed range, without DRF's offset for
    ties. Cursors keep DRF's encoding, the key's values as the position; one that does not
    decode is DRF's 404 `Invalid cursor`."""

    key_types: tuple[type, ...] = ()
    _next_position: Position | None = None

    def paginate_rows(
        self,
        request: Request,
        *,
        read: Callable[[Position | None, int], Sequence[Row]],
        key: Callable[[Row], Position],
    ) -> list[Row]:
        self.request = request
        self.base_url = request.build_absolute_uri()
        size = self.get_page_size(request)
        assert size is not None  # REST_FRAMEWORK's PAGE_SIZE is set
        rows = list(read(self._position(request), size + 1))
        page = rows[:size]
        self._next_position = key(page[-1]) if len(rows) > size else None
        return page

    def get_next_link(self) -> str | None:
        if self._next_position is None:
            return None
        position: Any = " ".join(_text(value) for value in self._next_position)
        return self.encode_cursor(pagination.Cursor(offset=0, reverse=False, position=position))

    def _position(self, request: Request) -> Position | None:
        cursor = self.decode_cursor(request)
        if cursor is None:
            return None
        parts = str(cursor.position or "").split(" ")
        if cursor.reverse or len(parts) != len(self.key_types):
            raise NotFound(self.invalid_cursor_message)
        try:
            return tuple(
                _parse(kind, part) for kind, part in zip(self.key_types, parts, strict=True)
            )
        except (ValueError, OverflowError) as error:
            raise NotFound(self.invalid_cursor_message) from error


def _field_position(field: Any, text: str) -> str:
    """The position as DRF writes one (text), once the field has read it."""
    if "\x00" in text:
        raise ValueError("PostgreSQL takes no NUL in text")
    value = field.to_python(text)
    field.run_validators(value)  # an integer's range, a string's length
    return str(_utc(value) if isinstance(value, datetime) else value)


def _utc(moment: datetime) -> datetime:
    # PostgreSQL refuses offsets past 15:59; in UTC the instant is the same.
    if moment.tzinfo is None:
        raise ValueError("a cursor's time has its offset")
    return moment.astimezone(UTC)


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _parse(kind: type, text: str) -> Any:
    if kind is datetime:
        return _utc(datetime.fromisoformat(text))
    if kind is uuid.UUID:
        return uuid.UUID(text)
    if kind is int:
        number = int(text)
        if not 0 <= number < 2**63:
            raise ValueError("a cursor's number is a bigint's")
        return number
    raise TypeError(f"no cursor position of type {kind.__name__}")
