"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for the load driver.

A general client (httpx, aiohttp) spends more CPU per request than the hub's own webhook view;
on a two-core machine that would measure the driver. This one writes a request and reads a
response with `Content-Length` or chunked framing, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=2**22)

    def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        reused = self.writer is not None
        try:
            return await self._request(method, path, body, headers)
        except (asyncio.IncompleteReadError, ConnectionError):
            # The server closed an idle keep-alive connection as this request went out (uvicorn
            # does after 5 s): like every HTTP client, send it again once on a new connection.
            if not reused:
                raise
            return await self._request(method, path, body, headers)

    async def _request(
        self, method: str, path: str, body: bytes, headers: dict[str, str] | None
    ) -> Response:
        if self.writer is None:
            await self._open()
        assert self.reader is not None
        assert self.writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        try:
            return await self._read()
        except BaseException:
            self.close()
            raise

    async def _read(self) -> Response:
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            body = b"".join(chunks)
        else:
            length = int(headers.get("content-length") or 0)
            body = await self.reader.readexactly(length) if length else b""
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, body)


class Pool:
    """Connections handed out one request at a time; grows up to `size`."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port = host, port
        self._idle: asyncio.LifoQueue[Connection] = asyncio.LifoQueue()
        self._created = 0
        self._size = size
        self._available = asyncio.Semaphore(size)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Response:
        async with self._available:
            connection = self._idle.get_nowait() if not self._idle.empty() else None
            if connection is None:
                connection = Connection(self.host, self.port)
                self._created += 1
            try:
                return await asyncio.wait_for(
                    connection.request(method, path, body, headers), timeout
                )
            finally:
                self._idle.put_nowait(connection)

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()
