"""Statistics endpoints: the stats page summary, per-slot and global series, and the per-slot reset."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from boothbridge import stats
from boothbridge.accounts.sign_in import Operator
from boothbridge.bootstrap import Container
from boothbridge.http.openapi import AUTH, INVALID, errors

# Range, grouping, paging and sorting are validated by `boothbridge.stats` (400 invalid_range/invalid_parameter),
# so the query parameters are plain strings and integers here.
FromQuery = Annotated[str | None, Query(alias="from", max_length=64, description="ISO 8601 date or datetime")]
ToQuery = Annotated[str | None, Query(alias="to", max_length=64, description="ISO 8601; a date includes that day")]


def stats_router(get_container: Any, operator_dep: Any) -> APIRouter:
    router = APIRouter(tags=["stats"])
    OperatorDep = Annotated[Operator, Depends(operator_dep)]

    @router.get("/api/stats/summary", responses=errors(*AUTH))
    async def summary(operator: OperatorDep) -> dict[str, Any]:
        """Every slot's figures since its last reset, and the all-time processed count."""
        c: Container = await get_container()
        out = await stats.slot_summary(c.engine, operator.id, c.catalog.currency_of)
        for slot in out["data"]:
            media_id = slot["template_media_id"]
            slot["template_url"] = f"{c.settings.base_url}/public/media/{media_id}" if media_id else None
        return out

    @router.get(
        "/api/stats/global",
        responses=errors(*AUTH, INVALID, "400 invalid_range", "400 invalid_parameter", "404 slot_not_found"),
    )
    async def global_stats(
        operator: OperatorDep,
        from_: FromQuery = None,
        to: ToQuery = None,
        group_by: Annotated[str, Query(max_length=16)] = "week",
        page: Annotated[int, Query()] = 1,
        page_size: Annotated[int, Query()] = 10,
        sort_by: Annotated[str, Query(max_length=32)] = "period_start",
        sort_order: Annotated[str, Query(max_length=8)] = "desc",
        provider_id: Annotated[str | None, Query(max_length=100)] = None,
        slot_id: Annotated[str | None, Query(max_length=100)] = None,
    ) -> dict[str, Any]:
        """All the operator's slots together per day/week/month, paginated and sorted."""
        c: Container = await get_container()
        query = stats.GlobalQuery(from_, to, group_by, page, page_size, sort_by, sort_order, provider_id, slot_id)
        return await stats.global_series(c.engine, operator.id, query)

    @router.get(
        "/api/stats/{slot_id}",
        responses=errors(*AUTH, INVALID, "400 invalid_range", "400 invalid_parameter", "404 slot_not_found"),
    )
    async def slot_stats(
        slot_id: str,
        operator: OperatorDep,
        from_: FromQuery = None,
        to: ToQuery = None,
        group_by: Annotated[str, Query(max_length=16)] = "day",
    ) -> dict[str, Any]:
        """One slot's figures per hour/day/week, in chronological order."""
        c: Container = await get_container()
        return await stats.slot_series(c.engine, operator.id, slot_id, from_, to, group_by)

    @router.post(
        "/api/slots/{slot_id}/reset_stats",
        status_code=204,
        response_class=Response,
        responses=errors(*AUTH, INVALID, "404 slot_not_found"),
    )
    async def reset_stats(slot_id: str, operator: OperatorDep) -> Response:
        """Restart the slot's "since reset" figures (any body, e.g. `{}`, is ignored)."""
        c: Container = await get_container()
        await stats.reset_stats(c.engine, operator.id, slot_id)
        return Response(status_code=204)

    return router
