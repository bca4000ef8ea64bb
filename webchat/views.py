"""The visitor's HTTP side of the web chat (CONTRACT §7), called cross-origin by widget.js from
the customer's site: appearance, sessions, image uploads and signed file links; and the demo
page that embeds the widget for a tenant.

Every endpoint resolves tenant and channel from the URL (an unknown slug, token, disabled or
non-web-chat channel is the same 404), checks the page's `Origin` against the channel's
`allowed_origins` (403 `origin_not_allowed`), and answers allowed origins with CORS headers.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django_tenants.utils import schema_context
from drf_spectacular.utils import OpenApiResponse, extend_schema
from redis.exceptions import RedisError
from rest_framework import status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from channels_app.models import Channel
from conversations.content import MEDIA_TYPES
from conversations.models import Attachment
from conversations.services.attachments import attachment_max_bytes, attachment_too_large
from hub.exceptions import ApplicationError, error_body
from hub.ratelimit import token_bucket_take
from tenants.models import Tenant
from webchat import selectors, services
from webchat.serializers import (
    VisitorSessionInputSerializer,
    VisitorSessionOutputSerializer,
    VisitorUploadInputSerializer,
    VisitorUploadOutputSerializer,
    WebchatAppearanceSerializer,
)
from webchat.tokens import file_link, file_link_read, visitor_token_max_age, visitor_token_read

logger = logging.getLogger(__name__)

MULTIPART_OVERHEAD = 64 * 1024
PREFLIGHT_MAX_AGE = 600
LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


class OriginNotAllowed(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "origin_not_allowed"
    default_detail = "This site is not allowed to embed this chat (the channel's allowed_origins)."


class InvalidVisitorToken(ApplicationError):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "invalid_token"
    default_detail = "The visitor token is missing, expired or not for this chat."


def _errors(*statuses: int) -> dict[int, OpenApiResponse]:
    from conversations.api.serializers import ApiErrorSerializer

    described = {
        400: "Invalid input (`validation_error`).",
        401: "No valid visitor token for this chat (`invalid_token`).",
        403: "The page's origin is not in the channel's `allowed_origins` "
        "(`origin_not_allowed`), or the tenant is suspended.",
        404: "No such tenant, channel token, or the channel is not an enabled web chat "
        "(one body for each).",
        413: "The file is larger than the limit (`payload_too_large`).",
        415: "Not a PNG, JPEG, GIF or WebP image (`unsupported_media_type`).",
        429: "Too many requests from this address (`rate_limited`, `Retry-After`).",
    }
    return {
        code: OpenApiResponse(ApiErrorSerializer, description=described[code]) for code in statuses
    }


class VisitorRateThrottle(BaseThrottle):
    """A token bucket per client address and endpoint: sessions and uploads create rows for
    anyone on the internet. With Redis down requests go through."""

    scope = "webchat"
    setting = ""
    default_per_minute = 30

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.method == "OPTIONS":
            return True
        limit = int(getattr(settings, self.setting, self.default_per_minute))
        try:
            decision = token_bucket_take(
                key=f"hub:throttle:{self.scope}:{self.get_ident(request)}",
                capacity=limit,
                per_seconds=60,
            )
        except RedisError:
            logger.warning("rate limiter unavailable; request allowed")
            return True
        if not decision.allowed:
            self._wait = decision.retry_after
        return decision.allowed

    def wait(self) -> float | None:
        return max(1, math.ceil(self._wait)) if self._wait is not None else None


class SessionThrottle(VisitorRateThrottle):
    scope = "webchat-session"
    setting = "HUB_WEBCHAT_SESSIONS_PER_MINUTE"


class UploadThrottle(VisitorRateThrottle):
    scope = "webchat-upload"
    setting = "HUB_WEBCHAT_UPLOADS_PER_MINUTE"
    default_per_minute = 20


class _WebchatView(APIView):
    """Public, cross-origin, no cookies: no API key, no session, no CSRF (nothing ambient
    authenticates these requests; the visitor token is sent explicitly)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type[BaseThrottle]] = []
    cors_methods = "GET, OPTIONS"
    cors_origin: str | None = None
    # Whether a request without Origin passes: browsers leave it out of same-origin GETs.
    origin_optional = False

    def resolve(
        self, request: HttpRequest, slug: str, channel_token: str
    ) -> tuple[Tenant, Channel]:
        tenant = selectors.webchat_tenant_get(slug=slug)
        with schema_context(tenant.schema_name):
            channel = selectors.webchat_channel_get(channel_token=channel_token)
        origin = request.headers.get("Origin")
        if origin is None and self.origin_optional and request.method == "GET":
            return tenant, channel
        if not selectors.origin_allowed(channel=channel, origin=origin):
            raise OriginNotAllowed()
        self.cors_origin = origin
        return tenant, channel

    def options(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Response:
        """The browser's preflight: allowed origins get the methods and headers they may use."""
        self.resolve(request, kwargs["slug"], kwargs["channel_token"])
        response = Response(status=status.HTTP_204_NO_CONTENT)
        response["Access-Control-Allow-Methods"] = self.cors_methods
        response["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        response["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
        return response

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.cors_origin:
            response["Access-Control-Allow-Origin"] = self.cors_origin
            response["Access-Control-Expose-Headers"] = "Retry-After"
        response["Vary"] = "Origin"
        return response


class WebchatConfigView(_WebchatView):
    # Only a title and a colour, and nothing is created: a page of the hub itself may ask.
    origin_optional = True

    @extend_schema(
        tags=["web chat"],
        summary="A web chat's appearance",
        description="What the widget shows before a visitor opens it: title and colour. Creates "
        "nothing. Called from the customer's page (CORS for `allowed_origins`).",
        responses={200: WebchatAppearanceSerializer, **_errors(403, 404)},
    )
    def get(self, request: Request, slug: str, channel_token: str) -> Response:
        _, channel = self.resolve(request, slug, channel_token)
        return Response(selectors.channel_appearance(channel))


class VisitorSessionView(_WebchatView):
    parser_classes = [JSONParser]
    throttle_classes = [SessionThrottle]
    cors_methods = "POST, OPTIONS"

    @extend_schema(
        tags=["web chat"],
        summary="Start or resume a visitor session",
        description="Returns a signed, expiring visitor token bound to the tenant, the channel "
        "and the visitor's contact, the visitor's conversation and the socket URL. Send the "
        "previous token to keep the visitor and its conversation. The page's `Origin` must be "
        "in the channel's `allowed_origins`. See docs/webchat.md.",
        request=VisitorSessionInputSerializer,
        responses={200: VisitorSessionOutputSerializer, **_errors(400, 403, 404, 429)},
    )
    def post(self, request: Request, slug: str, channel_token: str) -> Response:
        tenant, channel = self.resolve(request, slug, channel_token)
        serializer = VisitorSessionInputSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with schema_context(tenant.schema_name):
            session = services.visitor_session_start(
                channel=channel,
                schema=tenant.schema_name,
                previous_token=data.get("visitor_token") or None,
                language=data.get("language", ""),
            )
        return Response(
            {
                "visitor_token": session.token,
                "conversation_id": str(session.conversation.pk),
                "ws_url": f"/ws/webchat/?token={session.token}",
                "expires_in": visitor_token_max_age(),
                **selectors.channel_appearance(channel),
            }
        )


def _content_length(request: Request) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


class VisitorUploadView(_WebchatView):
    parser_classes = [MultiPartParser]
    throttle_classes = [UploadThrottle]
    cors_methods = "POST, OPTIONS"

    @extend_schema(
        tags=["web chat"],
        summary="Upload an image as a visitor",
        description="multipart/form-data with one `file` (PNG, JPEG, GIF or WebP, told by its "
        "bytes), with `Authorization: Bearer <visitor_token>`. Then send a `message` frame "
        'naming it: `{"type": "image", "attachment_id": <id>}`.',
        request={"multipart/form-data": VisitorUploadInputSerializer},
        responses={
            201: VisitorUploadOutputSerializer,
            **_errors(400, 401, 403, 404, 413, 415, 429),
        },
    )
    def post(self, request: Request, slug: str, channel_token: str) -> Response:
        tenant, channel = self.resolve(request, slug, channel_token)
        header = request.headers.get("Authorization", "")
        claims = visitor_token_read(header.removeprefix("Bearer ").strip())
        if claims is None or claims.schema != tenant.schema_name or claims.channel_id != channel.pk:
            raise InvalidVisitorToken()
        declared = _content_length(request)
        if declared > attachment_max_bytes() + MULTIPART_OVERHEAD:
            raise attachment_too_large(size=declared)
        serializer = VisitorUploadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        with schema_context(tenant.schema_name):
            if selectors.visitor_context_get(claims=claims) is None:
                raise InvalidVisitorToken()
            attachment = services.visitor_image_upload(
                conversation_id=claims.conversation_id, file=upload, filename=upload.name or ""
            )
        return Response(
            {
                "id": str(attachment.pk),
                "filename": attachment.filename,
                "content_type": attachment.content_type,
                "size": attachment.size,
                "url": file_link(schema=tenant.schema_name, attachment_id=attachment.pk),
            },
            status=status.HTTP_201_CREATED,
        )


NOT_FOUND = error_body("not_found", "No such file.")


def visitor_file(request: HttpRequest, slug: str, signed: str) -> HttpResponseBase:
    """A file of a web chat conversation, for whoever holds its signed link (an `<img>` on the
    customer's page). Served so that it cannot run as a page: no sniffing, a sandboxing CSP,
    and anything but an image as a download."""
    if request.method not in ("GET", "HEAD"):
        return JsonResponse(error_body("method_not_allowed", "Use GET."), status=405)
    try:
        tenant = selectors.webchat_tenant_get(slug=slug)
    except ApplicationError:
        return JsonResponse(NOT_FOUND, status=404)
    attachment_id = file_link_read(schema=tenant.schema_name, signed=signed)
    if attachment_id is None:
        return JsonResponse(NOT_FOUND, status=404)
    with schema_context(tenant.schema_name):
        attachment = Attachment.objects.filter(pk=attachment_id).first()
        if attachment is None:
            return JsonResponse(NOT_FOUND, status=404)
        try:
            handle = attachment.file.open("rb")
        except FileNotFoundError:
            return JsonResponse(NOT_FOUND, status=404)
    inline = attachment.content_type.split("/")[0] in MEDIA_TYPES - {"document"}
    response = FileResponse(
        handle,
        content_type=attachment.content_type,
        as_attachment=not inline,
        filename=attachment.filename,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    response["Cache-Control"] = "private, max-age=3600"
    return response


def chat_demo(request: HttpRequest) -> HttpResponse:
    """`/t/<slug>/chat-demo/`: a sample shop page with the tenant's first enabled web chat
    embedded by its one script tag, exactly as a customer would embed it."""
    tenant = getattr(request, "tenant", None)
    channel = selectors.webchat_demo_channel_get()
    hub_url = f"{request.scheme}://{request.get_host()}"
    language = request.GET.get("lang", "")
    context = {
        "tenant": tenant,
        "channel": channel,
        "hub_url": hub_url,
        "language": language if LANG.match(language) else "",
        "origin_allowed": channel is not None
        and selectors.origin_allowed(channel=channel, origin=hub_url),
        "appearance": selectors.channel_appearance(channel) if channel else {},
    }
    return render(request, "webchat/demo.html", context, status=200 if channel is not None else 404)
