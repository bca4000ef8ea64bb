"""WebSocket consumers shared by every socket of the hub."""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import connection
from django_tenants.utils import schema_context


class FrameConsumer(AsyncJsonWebsocketConsumer):
    """JSON frames; a frame that is not a JSON object gets an `error` frame and the socket stays."""

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        try:
            content = json.loads(text_data if text_data is not None else (bytes_data or b""))
        except ValueError:
            await self.send_error("invalid_json", "Frames must be JSON objects.")
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_error("invalid_frame", "Frames must be objects with a 'type'.")
            return
        await self.receive_json(content, **kwargs)

    async def send_error(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "code": code, "message": message})


class SocketHealthConsumer(FrameConsumer):
    """`/t/<slug>/ws/health/`: proves the socket path end to end (tenant in scope, its schema in
    the database); answers `ping` with the schema the database is in."""

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if content["type"] != "ping":
            await self.send_error("unknown_frame", 'Send {"type": "ping"}.')
            return
        schema = await self._database_schema(self.scope["tenant_schema"])
        await self.send_json(
            {"type": "pong", "tenant": self.scope["tenant_slug"], "schema": schema}
        )

    @staticmethod
    @database_sync_to_async
    def _database_schema(schema_name: str) -> str:
        with schema_context(schema_name), connection.cursor() as cursor:
            cursor.execute("SELECT current_schema()")
            row = cursor.fetchone()
            return str(row[0]) if row else ""
