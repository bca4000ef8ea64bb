"""Health, readiness, metrics, request ids and what logs may say."""

from __future__ import annotations

import io
import json
import logging

from django.test import Client

from hub.logging import JsonFormatter, RequestIdFilter
from tests import support


def test_healthz_answers_without_a_tenant(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_names_redis_when_it_stops(db: None, client: Client, settings, tmp_path) -> None:
    with support.throwaway_redis(tmp_path) as (url, process):
        settings.REDIS_URL = url
        settings.CELERY_BROKER_URL = url
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.content
        assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "broker": "ok"}
        process.kill()
        process.wait()
        response = client.get("/readyz")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert "redis" in error["details"]["failed"]
    assert error["details"]["checks"]["database"] == "ok"
    assert "redis" in error["message"]


def test_readyz_names_the_database_when_it_is_unreachable(
    db: None, client: Client, settings
) -> None:
    from django.db import connections

    connection = connections["default"]
    original = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["PORT"] = str(support.free_port())
    try:
        response = client.get("/readyz")
    finally:
        connection.close()
        connection.settings_dict.update(original)
    assert response.status_code == 503
    assert response.json()["error"]["details"]["failed"] == ["database"]


def test_metrics_are_prometheus_text(client: Client) -> None:
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"hub_http_requests_total" in response.content


def _capture_json_logs() -> tuple[logging.Handler, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logging.getLogger().addHandler(handler)
    return handler, stream


def test_request_id_is_accepted_returned_and_logged(
    db: None, client: Client, settings, tmp_path
) -> None:
    handler, stream = _capture_json_logs()
    try:
        settings.REDIS_URL = f"redis://127.0.0.1:{support.free_port()}/0"
        response = client.get("/readyz", HTTP_X_REQUEST_ID="req-abc.123")
    finally:
        logging.getLogger().removeHandler(handler)
    assert response["X-Request-ID"] == "req-abc.123"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    warnings = [line for line in lines if line["message"] == "readiness check failed"]
    assert warnings
    assert all(line["request_id"] == "req-abc.123" for line in warnings)


def test_an_unsafe_request_id_is_replaced(client: Client) -> None:
    response = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")
    assert response["X-Request-ID"] != "bad id\nwith newline"
    assert len(response["X-Request-ID"]) == 32


def test_logs_mask_phones_and_emails_and_redact_secrets() -> None:
    handler, stream = _capture_json_logs()
    logger = logging.getLogger("hub.test")
    try:
        logger.warning(
            "contact %s wrote from %s at 2026-11-22 10:15:00",
            "+14155552671",
            "alice.smith@example.com",
            extra={
                "access_token": "EAAG-secret",
                "wa_id": "14155552671",
                "body": "my card is 4111",
            },
        )
        logger.warning("auth header was Bearer hub_AbCdEfGh_0123456789abcdefghijKLMN")
    finally:
        logging.getLogger().removeHandler(handler)
    output = stream.getvalue()
    for secret in (
        "4155552671",
        "alice.smith",
        "example.com",
        "EAAG-secret",
        "4111",
        "hub_AbCdEfGh",
    ):
        assert secret not in output
    first = json.loads(output.splitlines()[0])
    assert "+*********71" in first["message"]
    assert "2026-11-22 10:15:00" in first["message"]
    assert first["access_token"] == "[redacted]"
    assert first["wa_id"] == "*********71"


def test_probes_answer_whatever_the_host(client: Client, settings) -> None:
    settings.ALLOWED_HOSTS = ["hub.example.com"]
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/admin/login/", HTTP_HOST="10.1.2.3:8000").status_code == 400
