"""RequestIdMiddleware: the Lambda request id, else a sane X-Request-Id, else a new uuid; answered as X-Request-Id
and bound to every line logged while the request runs."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import structlog
from fastapi import FastAPI
from mangum import Mangum

from boothbridge.http.request_id import RequestIdMiddleware

EVENTS = Path(__file__).resolve().parents[1] / "events"


def app_seeing_ids() -> tuple[FastAPI, list[dict[str, Any]]]:
    """An app whose route records the log context it runs in (what every log line of the request gets)."""
    app = FastAPI()
    app.add_middleware(RequestIdMiddleware)
    seen: list[dict[str, Any]] = []

    @app.get("/probe")
    async def probe() -> dict[str, str]:
        seen.append(structlog.contextvars.get_contextvars())
        return {"ok": "yes"}

    return app, seen


async def get(app: FastAPI, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get("/probe", headers=headers)


async def test_a_new_uuid_is_bound_answered_and_unbound_afterwards() -> None:
    app, seen = app_seeing_ids()
    first, second = await get(app), await get(app)
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert [str(uuid.UUID(i)) for i in ids] == ids and ids[0] != ids[1]
    assert [s["request_id"] for s in seen] == ids
    assert "request_id" not in structlog.contextvars.get_contextvars()


async def test_a_sane_caller_id_is_kept_and_anything_else_replaced() -> None:
    app, seen = app_seeing_ids()
    kept = await get(app, {"X-Request-Id": "edge-1:abc.DEF_9"})
    assert kept.headers["x-request-id"] == "edge-1:abc.DEF_9" == seen[-1]["request_id"]
    for bad in ("x" * 129, "has space", 'quote"d', "\u00e9t\u00e9", "-leading-dash"):
        r = await get(app, {"X-Request-Id": bad.encode()})  # type: ignore[dict-item]
        assert r.headers["x-request-id"] != bad and uuid.UUID(r.headers["x-request-id"])


async def test_an_enclosing_app_with_the_middleware_names_the_request_once() -> None:
    inner, seen = app_seeing_ids()
    outer = RequestIdMiddleware(inner)
    r = await get(outer)  # type: ignore[arg-type]
    assert r.headers.get_list("x-request-id") == [seen[0]["request_id"]]


def test_on_lambda_the_invocations_request_id_names_the_request() -> None:
    class Context:
        aws_request_id = "0d6c7d3a-1111-4222-8333-444455556666"

    event = json.loads((EVENTS / "ingest_function_url.json").read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/probe"
    event["requestContext"]["http"]["method"] = "GET"
    event["headers"] = {"host": event["headers"]["host"], "x-request-id": "caller-chosen"}
    event["body"], event["isBase64Encoded"] = base64.b64encode(b"").decode(), True
    app, seen = app_seeing_ids()
    loop = asyncio.new_event_loop()  # Mangum runs the app on the thread's loop, as on Lambda
    asyncio.set_event_loop(loop)
    try:
        response = Mangum(app, lifespan="off")(event, Context())  # type: ignore[arg-type]
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    assert response["statusCode"] == 200
    assert response["headers"]["x-request-id"] == Context.aws_request_id == seen[0]["request_id"]
