"""Booth statistics (SPEC §8, seed 003 "Статистика"): the maths is SQL, kept visible here.

Definitions, shared by every endpoint:
- A booth request is one `processing_log` row of the slot; test runs (`is_test`) are never booth traffic.
  `success` = SUCCESS rows, `errors` = ERROR rows (including fallback answers, which are provider failures),
  `timeouts` = TIMEOUT rows; the summary's error % is (ERROR + TIMEOUT) / all requests.
- Response times are what the booth waited, over all its requests; p95 is `percentile_cont(0.95)`
  (linear interpolation); averages and percentiles are rounded to whole milliseconds, and null (not 0) in a
  period without requests.
- Money comes from `jobs.cost`, one job once, at the job's arrival time: a re-post of the same photo attaches
  to its job (retry-safe ingest) and is not billed twice, and a job that finished after its 504 still counts.
- Periods are UTC buckets (`date_trunc` on naive UTC timestamps, so the session TimeZone cannot move a day);
  weeks start on Monday (ISO). Every period meeting the range is listed, empty ones with zero counts
  (`generate_series`), so a chart has no gaps and the global endpoint's `total` is the number of periods.
- Costs are in each provider's pricing currency (the catalog's `pricing.currency`); the summary also gives a
  slot's spending per currency, since a slot may have changed providers since its reset.
- Ranges are half-open [from, to). A date-only `to` (`2024-04-07`) includes that whole day, as in the seed.
- Where failures stopped (a slot's series): `failures_by_step` counts the slot's failed booth requests in the range
  by the pipeline step (0-based) and alternative (0: the step's own provider) their job stopped at, as ingest
  recorded them (`processing_log.failed_step`, `failed_alternative`); requests without a step (a timeout, a
  failure before any job ran, rows from before pipelines) are not in it.
- Retention: processing_log keeps LOG_RETENTION_DAYS (default 90) days of rows. Before the cleanup deletes older
  rows it adds them to `processing_log_totals` per slot, so the summary's counts stay exact: the all-time
  processed count is every booth request's SUCCESS ever (deleted + kept rows), and the since-reset requests,
  processed and error % include deleted rows newer than the reset. The since-reset p95 is over the kept rows
  only; the series (≤ 31 / ≤ 90 days) show nothing older than the retention.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, LiteralString

from sqlalchemy import text

from boothbridge.db.engine import autocommit
from boothbridge.errors import AppError
from boothbridge.jobs import statements as sql
from boothbridge.stats.query import (
    GLOBAL_DEFAULT_DAYS,
    GLOBAL_GROUPS,
    GLOBAL_MAX_DAYS,
    SLOT_DEFAULT_DAYS,
    SLOT_GROUPS,
    SLOT_MAX_DAYS,
    SORT_COLUMNS,
    GlobalQuery,
    Range,
    check_paging,
    iso_utc,
    parse_range,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

UNKNOWN_CURRENCY = "unknown"  # the provider is no longer in the catalog, or its pricing names no currency

STEPS = {"hour": "1 hour", "day": "1 day", "week": "1 week", "month": "1 month"}


def _opt(value: Any, kind: type[int] | type[float]) -> Any:
    return None if value is None else kind(value)


def _period_json(r: Any, group_by: str, *, with_end: bool) -> dict[str, Any]:
    """Hours as UTC datetimes; days, weeks and months as dates (a period's first and last day), as in the seed."""
    start = r.period_start
    out = {"period_start": iso_utc(start.replace(tzinfo=UTC)) if group_by == "hour" else start.date().isoformat()}
    if with_end:
        out["period_end"] = r.period_end.isoformat()
    return out | {
        "success": r.success,
        "errors": r.errors,
        "timeouts": r.timeouts,
        "avg_response_ms": _opt(r.avg_ms, int),
        "p95_response_ms": _opt(r.p95_ms, int),
        "cost": float(r.cost),
    }


# The statements on `jobs` (series, summary) are in `boothbridge.jobs.statements` (`STATS_*`).
_OWNED = text("SELECT 1 FROM slots WHERE id = :id AND user_id = :uid")
# The reset and the zeroing of the since-reset totals of rows already deleted, in one statement (one transaction).
_RESET = text(
    """
    WITH reset AS (
        UPDATE slots SET last_reset_at = now() WHERE id = :id AND user_id = :uid RETURNING id, last_reset_at
    ),
    zeroed AS (
        UPDATE processing_log_totals t
        SET since_reset_requests = 0, since_reset_processed = 0, since_reset_failed = 0, updated_at = now()
        FROM reset WHERE t.slot_id = reset.id
    )
    SELECT last_reset_at FROM reset
    """
)


# The slot's failed booth requests in [start, end) by the step and alternative they stopped at, in step order
# (the slot's rows by the (slot_id, created_at) index). psycopg placeholders: it runs as the series do. (`n`, not
# `count`: a result row is a tuple, whose `count` is a method.)
STEP_FAILURES: LiteralString = """
    SELECT l.failed_step AS step_index, coalesce(l.failed_alternative, 0) AS alternative, count(*) AS n
    FROM processing_log l
    WHERE l.slot_id = %(slot)s AND NOT l.is_test AND l.failed_step IS NOT NULL
      AND l.created_at >= %(start)s AND l.created_at < %(end)s
    GROUP BY 1, 2
    ORDER BY 1, 2
    """


def _slot_not_found(slot_id: str) -> AppError:
    # Another operator's slot is reported exactly like a missing one.
    return AppError(404, "slot_not_found", "no such slot", {"slot_id": slot_id})


async def _require_slot(conn: Any, user_id: int, slot_id: str) -> None:
    owned = await conn.execute(_OWNED, {"id": slot_id, "uid": user_id})
    if owned.first() is None:
        raise _slot_not_found(slot_id)


def _bounds(rng: Range) -> dict[str, Any]:
    return {"start": rng.start, "end": rng.end, "unit": rng.group_by, "step": STEPS[rng.group_by]}


async def slot_series(
    engine: AsyncEngine, user_id: int, slot_id: str, raw_from: str | None, raw_to: str | None, group_by: str
) -> dict[str, Any]:
    """`GET /api/stats/{slot_id}`: the slot's periods in chronological order, and `failures_by_step`
    (`[{step_index, alternative, count}]`, by step then alternative) over the same range."""
    rng = parse_range(raw_from, raw_to, group_by, SLOT_GROUPS, SLOT_MAX_DAYS, SLOT_DEFAULT_DAYS)
    async with autocommit(engine).connect() as conn:
        await _require_slot(conn, user_id, slot_id)
        params = {"slot": slot_id, "uid": user_id, **_bounds(rng)}
        rows = (await conn.exec_driver_sql(sql.STATS_SLOT_SERIES, params)).all()
        failures = (await conn.exec_driver_sql(STEP_FAILURES, params)).all()
    metrics = [_period_json(r, rng.group_by, with_end=False) for r in rows]
    by_step = [{"step_index": f.step_index, "alternative": f.alternative, "count": f.n} for f in failures]
    return {"slot_id": slot_id, "range": rng.json(), "metrics": metrics, "failures_by_step": by_step}


async def global_series(engine: AsyncEngine, user_id: int, q: GlobalQuery) -> dict[str, Any]:
    """`GET /api/stats/global`: the operator's slots together, one row per period, sorted and paginated."""
    rng = parse_range(q.raw_from, q.raw_to, q.group_by, GLOBAL_GROUPS, GLOBAL_MAX_DAYS, GLOBAL_DEFAULT_DAYS)
    check_paging(q)
    # Whitelisted column and direction (checked above); ties are broken by period in the same direction.
    statement = sql.STATS_GLOBAL_SERIES[SORT_COLUMNS[q.sort_by], q.sort_order]
    params = {
        "uid": user_id,
        "provider": q.provider_id or None,
        "slot": q.slot_id or None,
        "limit": q.page_size,
        "offset": (q.page - 1) * q.page_size,
        **_bounds(rng),
    }
    async with autocommit(engine).connect() as conn:
        if q.slot_id:
            await _require_slot(conn, user_id, q.slot_id)
        rows = (await conn.exec_driver_sql(statement, params)).all()
    data = [_period_json(r, rng.group_by, with_end=True) for r in rows if r.period_start is not None]
    total = rows[0].total  # the count row is always there, even past the last page
    return {"data": data, "meta": {"page": q.page, "page_size": q.page_size, "total": total}, "range": rng.json()}


CurrencyOf = Callable[[str], str | None]


def _currency(currency_of: CurrencyOf, provider_id: str) -> str:
    return currency_of(provider_id) or UNKNOWN_CURRENCY


def _by_currency(by_provider: dict[str, Any] | None, currency_of: CurrencyOf) -> dict[str, float]:
    """Money per currency from money per provider."""
    totals: dict[str, float] = {}
    for provider_id, cost in sorted((by_provider or {}).items()):
        currency = _currency(currency_of, provider_id)
        totals[currency] = totals.get(currency, 0.0) + float(cost)
    return totals


async def slot_summary(engine: AsyncEngine, user_id: int, currency_of: CurrencyOf) -> dict[str, Any]:
    """The stats page: every slot of the operator's since its last reset, and the all-time processed count.
    `currency_of` gives a provider's pricing currency (from the catalog)."""
    async with autocommit(engine).connect() as conn:
        rows = (await conn.exec_driver_sql(sql.STATS_SUMMARY, {"uid": user_id})).all()
    slots = [
        {
            "id": r.id,
            "name": r.name,
            "template_media_id": r.template_media_id,
            "processed": r.processed,
            "requests": r.requests,
            "p95_response_ms": _opt(r.p95_ms, int),
            "error_pct": _opt(r.error_pct, float),
            "last_cost": _opt(r.last_cost, float),
            "last_cost_currency": _currency(currency_of, r.last_cost_provider) if r.last_cost_provider else None,
            "total_cost": float(r.total_cost),
            "total_cost_by_currency": _by_currency(r.by_provider, currency_of),
            "last_reset_at": iso_utc(r.last_reset_at) if r.last_reset_at else None,
        }
        for r in rows
    ]
    return {"data": slots, "processed_all_time": rows[0].processed_all_time if rows else 0}


async def reset_stats(engine: AsyncEngine, user_id: int, slot_id: str) -> datetime:
    """Start the slot's "since reset" figures afresh. One statement: concurrent resets each just set now(), so
    there is no "reset in progress" state (the seed's 409) to report. History is kept for the series."""
    async with autocommit(engine).connect() as conn:
        reset_at: datetime | None = (await conn.execute(_RESET, {"id": slot_id, "uid": user_id})).scalar()
    if reset_at is None:
        raise _slot_not_found(slot_id)
    return reset_at
