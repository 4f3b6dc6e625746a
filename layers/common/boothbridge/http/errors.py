"""Uniform error responses for every app: `{"error": {"code", "message", "details"}}`, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from boothbridge.errors import AppError, error_body

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def app_error_response(err: AppError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers or None)


def install_error_handlers(app: FastAPI) -> None:
    # The database drivers are imported when an app is built, not when a function module is imported (issue 13:
    # the module's cold import stays light; an app without a database never runs).
    import psycopg
    from psycopg_pool import PoolTimeout
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

    from boothbridge.db.raw import DatabaseUnavailable, is_connection_trouble, trouble_reason

    async def on_app_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return app_error_response(exc)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        fields: list[dict[str, Any]] = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        return JSONResponse(
            error_body("validation_error", "the request is not valid", {"fields": fields}), status_code=400
        )

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return JSONResponse(
            error_body(code, message), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        if is_connection_trouble(exc):
            # The database blinked or is down (a restart, a failover): not a bug of ours, and the client may
            # simply try again. 503 `database_unavailable` with Retry-After, in the uniform format.
            log.warning("database unavailable: %s", type(exc).__name__)
            return app_error_response(DatabaseUnavailable(trouble_reason(exc)))
        log.exception("unhandled error")
        return JSONResponse(error_body("internal_error", "an internal error occurred"), status_code=500)

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
    # The database's own exception classes get the same handler registered by class: Starlette re-raises whatever
    # reaches the catch-all `Exception` handler to the server (a ~200-line "Exception in ASGI application" per
    # request during an outage, burying real crashes); handlers registered by class answer and stop there.
    for database_error in (psycopg.Error, PoolTimeout, DBAPIError, SQLAlchemyTimeoutError, DatabaseUnavailable):
        app.add_exception_handler(database_error, on_unexpected)
