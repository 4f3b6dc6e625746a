"""Operational endpoints: `/health` and `/metrics` (no token: for load balancers and Prometheus).

(Named `health`, not `ops`: an *operation* is the catalog's word for what a provider does.)"""

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from functions.admin.deps import ContainerDep
from functions.admin.schemas import HealthReport

router = APIRouter(tags=["ops"])

PROMETHEUS_TEXT = "text/plain; version=0.0.4"


@router.get(
    "/health",
    response_model=HealthReport,
    responses={
        200: {"description": "`status` `ok`, with each check's latency and the providers' configuration"},
        503: {
            "model": HealthReport,
            "description": "`status` `unavailable`: the database or the storage does not answer (same body)",
        },
    },
)
async def get_health(c: ContainerDep) -> JSONResponse:
    """Database, storage and provider configuration; 503 when the service cannot work."""
    # The report is sent as built (a JSONResponse bypasses the model): checks omit the keys they have no value
    # for, where a serialised model would send nulls. HealthReport documents it, and the tests check it.
    report = await c.monitoring.health()
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"description": "Prometheus text exposition format 0.0.4", "content": {"text/plain": {}}}},
)
async def get_metrics(c: ContainerDep) -> PlainTextResponse:
    """Prometheus text: ingest by status, latency histogram, queue depth, jobs in flight, provider errors."""
    return PlainTextResponse(await c.monitoring.metrics_text(), media_type=PROMETHEUS_TEXT)
