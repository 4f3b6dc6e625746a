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
- Retention: processing_log keeps LOG_RETENTION_DAYS (default 90) days of rows. Before the cleanup deletes older
  rows it adds them to `processing_log_totals` per slot, so the summary's counts stay exact: the all-time
  processed count is every booth request's SUCCESS ever (deleted + kept rows), and the since-reset requests,
  processed and error % include deleted rows newer than the reset. The since-reset p95 is over the kept rows
  only; the series (≤ 31 / ≤ 90 days) show nothing older than the retention.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from boothbridge.db.engine import autocommit
from boothbridge.errors import AppError
from boothbridge.stats_query import (
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


# The periods meeting [start, end): naive UTC timestamps stepped by a calendar interval.
_PERIODS = """
    periods AS (
        SELECT gs AS period_start
        FROM generate_series(date_trunc(:unit, CAST(:start AS timestamptz) AT TIME ZONE 'UTC'),
                             CAST(:end AS timestamptz) AT TIME ZONE 'UTC' - interval '1 microsecond',
                             CAST(:step AS interval)) AS gs
    )"""

# Per-period aggregates over the booth requests (`log`) and the jobs (`spend`) of the slots in `own`.
_BUCKETS = """
    requests AS (
        SELECT date_trunc(:unit, l.created_at AT TIME ZONE 'UTC') AS period_start,
               count(*) FILTER (WHERE l.status = 'SUCCESS') AS success,
               count(*) FILTER (WHERE l.status = 'ERROR') AS errors,
               count(*) FILTER (WHERE l.status = 'TIMEOUT') AS timeouts,
               round(avg(l.response_time_ms)) AS avg_ms,
               round(CAST(percentile_cont(0.95) WITHIN GROUP (ORDER BY l.response_time_ms) AS numeric)) AS p95_ms
        FROM processing_log l JOIN own ON own.id = l.slot_id
        WHERE NOT l.is_test AND l.created_at >= :start AND l.created_at < :end
        GROUP BY 1
    ),
    spend AS (
        SELECT date_trunc(:unit, j.created_at AT TIME ZONE 'UTC') AS period_start, sum(j.cost) AS cost
        FROM jobs j JOIN own ON own.id = j.slot_id
        WHERE NOT j.is_test AND j.created_at >= :start AND j.created_at < :end
        GROUP BY 1
    ),
    series AS (
        SELECT p.period_start,
               CAST(p.period_start + CAST(:step AS interval) - interval '1 day' AS date) AS period_end,
               coalesce(r.success, 0) AS success, coalesce(r.errors, 0) AS errors,
               coalesce(r.timeouts, 0) AS timeouts, r.avg_ms, r.p95_ms, coalesce(s.cost, 0) AS cost
        FROM periods p
        LEFT JOIN requests r USING (period_start)
        LEFT JOIN spend s USING (period_start)
    )"""

_SLOT_SERIES = f"""
    WITH own AS (SELECT id FROM slots WHERE id = :slot AND user_id = :uid),
    {_PERIODS},
    {_BUCKETS}
    SELECT * FROM series ORDER BY period_start
"""

# One statement answers a page and the total: the page is LEFT JOINed to the count, so a page past the end
# still returns one row carrying `total` (with NULL period columns).
_GLOBAL_SERIES = f"""
    WITH own AS (
        SELECT id FROM slots
        WHERE user_id = :uid
          AND (CAST(:provider AS text) IS NULL OR provider_id = :provider)
          AND (CAST(:slot AS text) IS NULL OR id = :slot)
    ),
    {_PERIODS},
    {_BUCKETS},
    page AS (SELECT * FROM series ORDER BY {{order}} LIMIT :limit OFFSET :offset)
    SELECT n.total, page.* FROM (SELECT count(*) AS total FROM periods) n LEFT JOIN page ON true
    ORDER BY {{order}}
"""

# The stats page: each slot since its last reset, plus the operator's all-time processed count. Counts are the
# kept processing_log rows plus those the retention cleanup folded into processing_log_totals.
_SUMMARY = """
    WITH own AS (SELECT id, name, settings_json, last_reset_at FROM slots WHERE user_id = :uid),
    kept AS (
        SELECT l.slot_id,
               count(*) AS requests,
               count(*) FILTER (WHERE l.status = 'SUCCESS') AS processed,
               count(*) FILTER (WHERE l.status IN ('ERROR', 'TIMEOUT')) AS failed,
               round(CAST(percentile_cont(0.95) WITHIN GROUP (ORDER BY l.response_time_ms) AS numeric)) AS p95_ms
        FROM processing_log l JOIN own s ON s.id = l.slot_id
        WHERE NOT l.is_test AND l.created_at >= coalesce(s.last_reset_at, '-infinity')
        GROUP BY l.slot_id
    ),
    since_reset AS (
        SELECT s.id AS slot_id,
               coalesce(k.requests, 0) + coalesce(t.since_reset_requests, 0) AS requests,
               coalesce(k.processed, 0) + coalesce(t.since_reset_processed, 0) AS processed,
               coalesce(k.failed, 0) + coalesce(t.since_reset_failed, 0) AS failed,
               k.p95_ms
        FROM own s
        LEFT JOIN kept k ON k.slot_id = s.id
        LEFT JOIN processing_log_totals t ON t.slot_id = s.id
    ),
    -- The booth jobs each slot's money is counted from: those since its last reset.
    billed AS (
        SELECT j.slot_id, j.provider_id, j.cost, j.finished_at, j.created_at
        FROM jobs j JOIN own s ON s.id = j.slot_id
        WHERE NOT j.is_test AND j.created_at >= coalesce(s.last_reset_at, '-infinity')
    ),
    spend AS (
        SELECT slot_id, sum(cost) AS total_cost,
               -- the cost of the job that finished last (the latest AI processing), and whose price it was
               (array_agg(cost ORDER BY finished_at DESC NULLS LAST, created_at DESC)
                   FILTER (WHERE cost IS NOT NULL))[1] AS last_cost,
               (array_agg(provider_id ORDER BY finished_at DESC NULLS LAST, created_at DESC)
                   FILTER (WHERE cost IS NOT NULL))[1] AS last_cost_provider
        FROM billed
        GROUP BY slot_id
    ),
    -- The same money per provider: a slot that changed providers since its reset may have spent in two
    -- currencies, which one sum cannot show.
    spend_by_provider AS (
        SELECT slot_id, jsonb_object_agg(provider_id, cost) AS by_provider
        FROM (SELECT slot_id, provider_id, sum(cost) AS cost FROM billed WHERE cost IS NOT NULL
              GROUP BY slot_id, provider_id) per_provider
        GROUP BY slot_id
    )
    SELECT s.id, s.name, s.last_reset_at,
           -- the slot's template image: its first `*_media_id` setting, by key name
           (SELECT e.value FROM jsonb_each_text(s.settings_json) e
             WHERE e.key LIKE '%\\_media\\_id' AND e.value <> '' ORDER BY e.key LIMIT 1) AS template_media_id,
           coalesce(r.processed, 0) AS processed, coalesce(r.requests, 0) AS requests, r.p95_ms,
           round(100.0 * r.failed / nullif(r.requests, 0), 2) AS error_pct,
           m.last_cost, m.last_cost_provider, coalesce(m.total_cost, 0) AS total_cost, p.by_provider,
           (SELECT count(*) FROM processing_log l JOIN own o ON o.id = l.slot_id
             WHERE l.status = 'SUCCESS' AND NOT l.is_test)
           + (SELECT CAST(coalesce(sum(t.processed), 0) AS bigint)
                FROM processing_log_totals t JOIN own o ON o.id = t.slot_id)
             AS processed_all_time
    FROM own s
    LEFT JOIN since_reset r ON r.slot_id = s.id
    LEFT JOIN spend m ON m.slot_id = s.id
    LEFT JOIN spend_by_provider p ON p.slot_id = s.id
    ORDER BY s.id
"""

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
    """`GET /api/stats/{slot_id}`: the slot's periods in chronological order."""
    rng = parse_range(raw_from, raw_to, group_by, SLOT_GROUPS, SLOT_MAX_DAYS, SLOT_DEFAULT_DAYS)
    async with autocommit(engine).connect() as conn:
        await _require_slot(conn, user_id, slot_id)
        rows = (await conn.execute(text(_SLOT_SERIES), {"slot": slot_id, "uid": user_id, **_bounds(rng)})).all()
    metrics = [_period_json(r, rng.group_by, with_end=False) for r in rows]
    return {"slot_id": slot_id, "range": rng.json(), "metrics": metrics}


async def global_series(engine: AsyncEngine, user_id: int, q: GlobalQuery) -> dict[str, Any]:
    """`GET /api/stats/global`: the operator's slots together, one row per period, sorted and paginated."""
    rng = parse_range(q.raw_from, q.raw_to, q.group_by, GLOBAL_GROUPS, GLOBAL_MAX_DAYS, GLOBAL_DEFAULT_DAYS)
    check_paging(q)
    # Whitelisted column and direction; ties are broken by period in the same direction.
    direction = q.sort_order.upper()
    order = f"{SORT_COLUMNS[q.sort_by]} {direction}, period_start {direction}"
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
        rows = (await conn.execute(text(_GLOBAL_SERIES.format(order=order)), params)).all()
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
        rows = (await conn.execute(text(_SUMMARY), {"uid": user_id})).all()
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
