"""Request id and Prometheus metrics for every HTTP request."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Histogram

from hub.context import new_request_id, request_id_var

REQUESTS = Counter("hub_http_requests_total", "HTTP requests answered", ["method", "status"])
LATENCY = Histogram(
    "hub_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class ProbeMiddleware:
    """Answers `/healthz`, `/readyz` and `/metrics` first: probes call by the pod's IP, which is
    no allowed host, and need no tenant, session or redirect."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        from hub import ops

        self.get_response = get_response
        self.routes: dict[str, Callable[[HttpRequest], HttpResponse]] = {
            "/healthz": ops.healthz,
            "/readyz": ops.readyz,
            "/metrics": ops.metrics,
        }

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = self.routes.get(request.path_info)
        return view(request) if view else self.get_response(request)


class RequestIdMiddleware:
    """Accepts a caller's `X-Request-ID` (or makes one), logs under it and returns it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = new_request_id(request.headers.get("X-Request-ID"))
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class MetricsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        LATENCY.labels(request.method).observe(time.perf_counter() - started)
        REQUESTS.labels(request.method, str(response.status_code)).inc()
        return response
