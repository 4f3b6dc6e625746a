"""Webhook HTTP facade: accept a provider's callback (JSON or form body) and hand it to WebhookService.

Importing this module stays cheap (a Lambda cold start): the container comes with the first request."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request

from boothbridge.errors import AppError
from boothbridge.http.errors import install_error_handlers
from boothbridge.http.holder import ContainerHolder, LazyMangum
from boothbridge.http.openapi import errors, install_openapi
from boothbridge.http.request_id import RequestIdMiddleware

if TYPE_CHECKING:
    from boothbridge.bootstrap import Container
    from boothbridge.settings import Settings

MAX_CALLBACK_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    app = FastAPI(title="boothbridge webhooks", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)  # X-Request-Id; the id on every log line of the request
    install_openapi(app)
    holder = app.state.holder = ContainerHolder(settings, container, listen=False)

    @app.post(
        "/webhooks/{provider_id}/{token}",
        tags=["webhooks"],
        responses=errors(
            "400 invalid_callback",
            "401 callback_unverified",
            "404 unknown_callback",
            "409 callback_replayed",
            "413 payload_too_large",
        ),
    )
    async def callback(provider_id: str, token: str, request: Request) -> dict[str, Any]:
        """Deliver an asynchronous provider's result for the job named by the token."""
        body = await request.body()
        if len(body) > MAX_CALLBACK_BYTES:
            raise AppError(413, "payload_too_large", "the callback body is too large")
        payload = parse_body(body, request.headers.get("content-type", ""))
        headers = {name.lower(): value for name, value in request.headers.items()}
        webhooks = (await holder.get()).webhooks
        delivery = await webhooks.deliver(provider_id, token, payload, headers=headers, body=body)
        return {"job_id": delivery.job_id, "status": delivery.outcome}

    return app


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """Providers post JSON (Turbotext) or form fields; both become a dict."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        from urllib.parse import parse_qsl

        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise AppError(400, "invalid_callback", "the callback body is not JSON") from None
    if not isinstance(data, dict):
        raise AppError(400, "invalid_callback", "the callback body must be a JSON object")
    return data


handler = LazyMangum(create_app)
