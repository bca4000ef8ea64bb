"""`GET|POST /webhooks/<slug>/<kind>/<channel_token>/`: the providers' way in (CONTRACT §5).

On the request path: resolve, verify the signature, store the raw event, enqueue. Nothing else,
so a webhook answers fast even when Redis or the LLM is down.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_tenants.utils import schema_context

from channels_app.inbound import inbound_event_enqueue, inbound_event_record
from channels_app.models import Channel
from channels_app.providers import provider_for
from channels_app.providers.base import Provider, WebhookRejected
from channels_app.selectors import channel_get_for_webhook
from hub.exceptions import error_body
from tenants.selectors import tenant_get_by_slug

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
NOT_FOUND = error_body("not_found", "No such webhook.")


def _refuse(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


@csrf_exempt
def provider_webhook(
    request: HttpRequest, slug: str, kind: str, channel_token: str
) -> HttpResponse:
    if request.method not in ("GET", "POST"):
        return _refuse(405, "method_not_allowed", "Use GET for a handshake, POST for events.")
    tenant = tenant_get_by_slug(slug=slug)
    if tenant is None:
        return JsonResponse(NOT_FOUND, status=404)
    if not tenant.is_active:
        return _refuse(403, "tenant_suspended", "This tenant is suspended.")
    with schema_context(tenant.schema_name):
        channel = channel_get_for_webhook(
            schema=tenant.schema_name, kind=kind, channel_token=channel_token
        )
        provider = provider_for(kind=kind, config=channel.config) if channel else None
        if channel is None or provider is None:
            return JsonResponse(NOT_FOUND, status=404)
        try:
            if request.method == "GET":
                return provider.handshake(params=request.GET, config=channel.config)
            return _receive(request, channel, provider)
        except WebhookRejected as rejected:
            return _refuse(rejected.status, rejected.code, rejected.message)


def _receive(request: HttpRequest, channel: Channel, provider: Provider) -> HttpResponse:
    length = request.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        return _refuse(413, "payload_too_large", f"Bodies are limited to {MAX_BODY_BYTES} bytes.")
    content_type = request.content_type or ""
    if content_type not in provider.content_types:
        return _refuse(
            415, "unsupported_media_type", f"Expected {', '.join(provider.content_types)}."
        )
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _refuse(413, "payload_too_large", f"Bodies are limited to {MAX_BODY_BYTES} bytes.")
    if not provider.verify(request=request, body=body, config=channel.config):
        return _refuse(401, "invalid_signature", "The request signature is missing or wrong.")
    try:
        payload = provider.decode(body=body)
        event_id = provider.event_id(payload=payload, body=body)
    except (ValueError, KeyError, TypeError):
        return _refuse(400, "malformed_body", "The body could not be read.")
    immediate = provider.immediate_response(payload=payload)
    if immediate is not None:
        return immediate
    event, created = inbound_event_record(
        channel=channel, provider_event_id=event_id, body=body, content_type=content_type
    )
    if created:
        inbound_event_enqueue(event_id=event.pk)
    return provider.acknowledge()
