"""Django's HTTP side under ASGI, served from a fixed pool of threads.

Django's own `ASGIHandler` runs every request's synchronous part in a thread made for that
request (asgiref's per-request `ThreadSensitiveContext`) and crosses between the event loop and
threads several times per request. Every view here is synchronous, so that machinery bought
nothing and cost half the web tier's CPU: a new thread per request, and with it a new Celery
backend, Redis client and broker channel per request, because those are cached per thread
(docs/performance.md, "the ASGI layer").

This handler reads the body on the event loop, then runs the whole synchronous handler chain
(middleware, view, `request_started`/`request_finished`) in one thread of a fixed pool, as a
threaded WSGI server would, and sends the response from the loop. Streaming responses are sent
under a `ThreadSensitiveContext` of their own, as Django sends them.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import close_old_connections
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix

Send = Any
Receive = Any
Scope = dict[str, Any]


class PooledASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self.executor = ThreadPoolExecutor(
            max_workers=settings.HUB_WEB_THREADS, thread_name_prefix="http"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Only HTTP is served here, not {scope['type']}.")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            response = await asyncio.get_running_loop().run_in_executor(
                self.executor, self._respond, scope, body_file
            )
            if response.streaming:
                # Sent as Django sends it; its chunks may read the database as they go.
                async with ThreadSensitiveContext():
                    try:
                        await self.send_response(response, send)
                    finally:
                        await sync_to_async(response.close)()
            else:
                await self.send_response(response, send)
        finally:
            body_file.close()

    def _respond(self, scope: Scope, body_file: Any) -> HttpResponseBase:
        """The synchronous part, in one pool thread: what a WSGI server does for a request."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None
            response = error_response
        else:
            response = self.get_response(request)
        response._handler_class = self.__class__  # type: ignore[attr-defined]
        if isinstance(response, FileResponse):
            # The ASGI server chunks the body itself.
            response.block_size = self.chunk_size
        if response.streaming:
            # Its body is read later, elsewhere: hand this thread's connection back now.
            close_old_connections()
        else:
            # The body is complete: `close()` sends `request_finished` from this thread, which
            # returns its database connection (to the pool, in production).
            response.close()
        return response
