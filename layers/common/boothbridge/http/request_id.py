"""Every request gets an id: bound to each line logged while it runs, and answered as `X-Request-Id`.

The id is, in order: the Lambda invocation's request id (Mangum passes the context as `scope["aws.context"]`, so
a line in our logs and the platform's START/END/REPORT lines share it); the caller's `X-Request-Id` when it is
a sane token (a proxy's or a client's id, so one request can be followed across systems); else a new uuid4.
A caller's value that is too long or carries anything but letters, digits and `._:-` is ignored (it would be
written into every log line of the request).
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-Id"
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
# Where the id is kept in the ASGI scope: an app mounted inside another that has this middleware (the emulator
# routes to the function apps) keeps the outer id instead of naming the request twice.
SCOPE_KEY = "boothbridge.request_id"


def request_id_for(scope: Scope) -> str:
    """The id of the request `scope` describes (see the module's docstring for the order)."""
    lambda_id = getattr(scope.get("aws.context"), "aws_request_id", None)
    if isinstance(lambda_id, str) and _SANE.fullmatch(lambda_id):
        return lambda_id
    for name, value in scope.get("headers") or ():
        if name.lower() == b"x-request-id":
            given = value.decode("latin-1")
            if _SANE.fullmatch(given):
                return given
            break
    return str(uuid.uuid4())


class RequestIdMiddleware:
    """Pure ASGI (no body buffering, streaming responses untouched): `app.add_middleware(RequestIdMiddleware)`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or SCOPE_KEY in scope:
            await self.app(scope, receive, send)
            return
        request_id = scope[SCOPE_KEY] = request_id_for(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        # Imported with the first request: structlog (and the rich it loads) is no part of a function's cold import.
        from boothbridge.platform.logs import log_scope

        with log_scope(request_id=request_id):
            await self.app(scope, receive, send_with_id)
