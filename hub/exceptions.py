"""One error shape for the whole API: `{"error": {"code", "message", "details"}}` (CONTRACT §4)."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(exceptions.APIException):
    """Raised by services; the handler turns it into the contract's error shape."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_request"
    default_detail = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message or self.default_detail, code or self.default_code)
        self.error_code = code or self.default_code
        self.details = details or {}
        if status_code is not None:
            self.status_code = status_code


class NotFoundError(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"
    default_detail = "Not found."


class ConflictError(ApplicationError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the current state."


class TenantSuspended(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "tenant_suspended"
    default_detail = "This tenant is suspended."


_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.ValidationError: "validation_error",
    exceptions.ParseError: "malformed_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


# How long a client should wait before trying again while the database is away (restart,
# failover): long enough not to hammer it, short enough to notice it is back.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5


def database_unavailable(exc: BaseException | None) -> bool:
    """PostgreSQL unreachable, restarting, or every pooled connection busy past the wait."""
    return isinstance(exc, OperationalError | InterfaceError)


def service_unavailable_response() -> JsonResponse:
    response = json_error_response(
        "service_unavailable", "The service is briefly unavailable; try again shortly.", 503
    )
    response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_SECONDS)
    return response


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    # Imported here: rest_framework.views imports the authentication classes, which import us.
    from rest_framework.views import exception_handler as drf_exception_handler

    if database_unavailable(exc):
        logger.warning("database unavailable", extra={"error": type(exc).__name__})
        return Response(
            error_body(
                "service_unavailable", "The service is briefly unavailable; try again shortly."
            ),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled error in API view", exc_info=exc)
        return Response(
            error_body("internal_error", "Something went wrong on our side."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    assert isinstance(exc, exceptions.APIException)
    if isinstance(exc, ApplicationError):
        body = error_body(exc.error_code, str(exc.detail), exc.details)
    elif isinstance(exc, exceptions.ValidationError):
        details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        body = error_body("validation_error", "The request is invalid.", details)
    else:
        code = next((c for k, c in _CODES.items() if isinstance(exc, k)), "error")
        body = error_body(code, str(exc.detail))
        wait = getattr(exc, "wait", None)
        if isinstance(exc, exceptions.Throttled) and wait is not None:
            body["error"]["details"] = {"retry_after": int(wait)}
    response.data = body
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def json_error_response(code: str, message: str, status_code: int) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status_code)


def api_not_found(request: HttpRequest) -> JsonResponse:
    return json_error_response("not_found", "Not found.", 404)


def page_not_found(request: HttpRequest, exception: Exception) -> Any:
    if _is_api(request):
        return api_not_found(request)
    from django.views.defaults import page_not_found as default

    return default(request, exception)


def server_error(request: HttpRequest) -> Any:
    # Django calls this handler inside its `except`: the exception is still at hand. A database
    # outage is a 503 in the one error shape on every path (webhooks, pages, the API), never a
    # stack trace, so providers and clients retry and nothing is lost.
    if database_unavailable(sys.exc_info()[1]):
        return service_unavailable_response()
    if _is_api(request):
        return json_error_response("internal_error", "Something went wrong on our side.", 500)
    from django.views.defaults import server_error as default

    return default(request)
