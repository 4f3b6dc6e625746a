"""Statistics endpoints: the stats page summary, per-slot and global series, and the per-slot reset.

The figures are computed by `boothbridge.stats.queries` (its docstring defines them); the models here describe them.
That module is imported by each endpoint, not here: it brings SQLAlchemy, which the first request's container
loads anyway, and the operator API's cold import does without it (issue 13)."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from boothbridge.http.openapi import AUTH, INVALID, errors
from boothbridge.stats.query import GlobalQuery
from functions.admin.deps import CatalogDep, EngineDep, OperatorDep, SettingsDep
from functions.admin.routes.media import public_media_url
from functions.admin.schemas import GlobalSeries, StatsSummary
from functions.admin.schemas_jobs import SlotStats

# Range, grouping, paging and sorting are validated by `boothbridge.stats.query` (400 invalid_range or
# invalid_parameter), so the query parameters are plain strings and integers here.
FromQuery = Annotated[str | None, Query(alias="from", max_length=64, description="ISO 8601 date or datetime")]
ToQuery = Annotated[str | None, Query(alias="to", max_length=64, description="ISO 8601; a date includes that day")]
SERIES_ERRORS = (*AUTH, INVALID, "400 invalid_range", "400 invalid_parameter", "404 slot_not_found")

router = APIRouter(tags=["stats"])


@router.get("/api/stats/summary", response_model=StatsSummary, responses=errors(*AUTH))
async def summary(operator: OperatorDep, engine: EngineDep, catalog: CatalogDep, settings: SettingsDep) -> StatsSummary:
    """Every slot's figures since its last reset, and the all-time processed count."""
    from boothbridge.stats import queries as stats  # deferred (SQLAlchemy): see the module docstring

    out = await stats.slot_summary(engine, operator.id, catalog.currency_of)
    for slot in out["data"]:
        media_id = slot["template_media_id"]
        slot["template_url"] = public_media_url(settings.base_url, media_id) if media_id else None
    return StatsSummary.model_validate(out)


@router.get("/api/stats/global", response_model=GlobalSeries, responses=errors(*SERIES_ERRORS))
async def global_stats(
    operator: OperatorDep,
    engine: EngineDep,
    from_: FromQuery = None,
    to: ToQuery = None,
    group_by: Annotated[str, Query(max_length=16)] = "week",
    page: Annotated[int, Query()] = 1,
    page_size: Annotated[int, Query()] = 10,
    sort_by: Annotated[str, Query(max_length=32)] = "period_start",
    sort_order: Annotated[str, Query(max_length=8)] = "desc",
    provider_id: Annotated[str | None, Query(max_length=100)] = None,
    slot_id: Annotated[str | None, Query(max_length=100)] = None,
) -> GlobalSeries:
    """All the operator's slots together per day/week/month, paginated and sorted."""
    from boothbridge.stats import queries as stats  # deferred (SQLAlchemy): see the module docstring

    query = GlobalQuery(from_, to, group_by, page, page_size, sort_by, sort_order, provider_id, slot_id)
    return GlobalSeries.model_validate(await stats.global_series(engine, operator.id, query))


@router.get("/api/stats/{slot_id}", response_model=SlotStats, responses=errors(*SERIES_ERRORS))
async def slot_stats(
    slot_id: str,
    operator: OperatorDep,
    engine: EngineDep,
    from_: FromQuery = None,
    to: ToQuery = None,
    group_by: Annotated[str, Query(max_length=16)] = "day",
) -> SlotStats:
    """One slot's figures per hour/day/week, in chronological order, and where its failed requests stopped in
    its pipeline (by step and alternative) over the same range."""
    from boothbridge.stats import queries as stats  # deferred (SQLAlchemy): see the module docstring

    return SlotStats.model_validate(await stats.slot_series(engine, operator.id, slot_id, from_, to, group_by))


@router.post(
    "/api/slots/{slot_id}/reset_stats",
    status_code=204,
    response_class=Response,
    responses=errors(*AUTH, INVALID, "404 slot_not_found"),
)
async def reset_stats(slot_id: str, operator: OperatorDep, engine: EngineDep) -> Response:
    """Restart the slot's "since reset" figures (any body, e.g. `{}`, is ignored)."""
    from boothbridge.stats import queries as stats  # deferred (SQLAlchemy): see the module docstring

    await stats.reset_stats(engine, operator.id, slot_id)
    return Response(status_code=204)
