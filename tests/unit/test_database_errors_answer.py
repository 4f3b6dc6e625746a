"""A database that is down answers 503 database_unavailable from every app, and the error stops there: it is not
re-raised to the server as a crash (Starlette re-raises what reaches the catch-all handler, which logged a
~200-line traceback per operator request during an outage)."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg_pool import PoolTimeout
from sqlalchemy.exc import OperationalError

from boothbridge.http.errors import install_error_handlers


def _app(error: BaseException) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return app


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("connection refused"),
        PoolTimeout("couldn't get a connection after 30.00 sec"),
        OperationalError("SELECT 1", {}, psycopg.OperationalError("server closed the connection unexpectedly")),
    ],
    ids=["psycopg", "pool-timeout", "sqlalchemy-wrapped"],
)
async def test_a_database_outage_is_a_503_that_is_not_re_raised(
    error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    # raise_app_exceptions (httpx's default) would raise here if the app re-raised the error to the server.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(error)), base_url="http://t") as client:
        r = await client.get("/boom")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "database_unavailable"
    assert "Retry-After" in r.headers
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


async def test_a_statement_error_is_still_a_500_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    error = psycopg.errors.UndefinedTable("relation does not exist")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(error)), base_url="http://t") as client:
        r = await client.get("/boom")
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    assert "unhandled error" in caplog.text
