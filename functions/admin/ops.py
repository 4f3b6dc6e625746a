"""Operational endpoints: `/health` and `/metrics` (no token: for load balancers and Prometheus)."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from boothbridge.bootstrap import Container
from boothbridge.platform.monitoring import health, metrics_text


def ops_router(get_container: Any) -> APIRouter:
    router = APIRouter(tags=["ops"])

    @router.get(
        "/health",
        responses={
            200: {"description": "`status` `ok`, with each check's latency and the providers' configuration"},
            503: {
                "description": "`status` `unavailable`: the database or the storage does not answer (same body)",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
        },
    )
    async def get_health() -> JSONResponse:
        """Database, storage and provider configuration; 503 when the service cannot work."""
        c: Container = await get_container()
        report = await health(c)
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    @router.get("/metrics", response_class=PlainTextResponse)
    async def get_metrics() -> PlainTextResponse:
        """Prometheus text: ingest by status, latency histogram, queue depth, jobs in flight, provider errors."""
        c: Container = await get_container()
        return PlainTextResponse(await metrics_text(c), media_type="text/plain; version=0.0.4")

    return router
