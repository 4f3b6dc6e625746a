"""What a statistics request asks for, validated (pure: no database, no I/O).

`parse_range` turns the `from`/`to`/`group_by` query parameters into a half-open UTC range; `check_paging` the
global endpoint's paging and sorting. Bad input raises the operator API's documented errors: 400
`invalid_parameter` (`details.parameter`, and `details.allowed` for a choice) or 400 `invalid_range`
(`details.from`/`to`/`max_days` when both bounds parsed). The queries that use them are in `boothbridge.stats.queries`.

Bounds are ISO 8601 dates or datetimes. A naive datetime is UTC; one with an offset is converted to UTC (so a
range across a daylight-saving change is exact: offsets are fixed in ISO 8601, zone names are not accepted). A
date-only `to` includes that whole UTC day. Defaults: `to` = now (rounded up to the second) or `from` plus the
endpoint's default span; `from` = `to` minus that span.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from boothbridge.errors import AppError

SLOT_GROUPS, SLOT_MAX_DAYS, SLOT_DEFAULT_DAYS = ("hour", "day", "week"), 31, 7
GLOBAL_GROUPS, GLOBAL_MAX_DAYS, GLOBAL_DEFAULT_DAYS = ("day", "week", "month"), 90, 30
# The global series' sort keys, each the name of its column in the query.
SORT_COLUMNS = {"period_start": "period_start", "success": "success", "errors": "errors", "cost": "cost"}
MAX_PAGE_SIZE, MAX_PAGE = 50, 100_000
# A "+02:00" offset sent unencoded in a query string arrives as " 02:00".
_SPACED_OFFSET = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Range:
    start: datetime  # inclusive, aware UTC
    end: datetime  # exclusive, aware UTC
    labels: tuple[str, str]  # as echoed back: dates stay dates, datetimes are UTC with Z
    group_by: str

    def json(self) -> dict[str, str]:
        return {"from": self.labels[0], "to": self.labels[1], "group_by": self.group_by}


@dataclass(frozen=True)
class GlobalQuery:
    """`GET /api/stats/global`'s query parameters as sent (validated by `parse_range` and `check_paging`)."""

    raw_from: str | None = None
    raw_to: str | None = None
    group_by: str = "week"
    page: int = 1
    page_size: int = 10
    sort_by: str = "period_start"
    sort_order: str = "desc"
    provider_id: str | None = None
    slot_id: str | None = None


def iso_utc(moment: datetime) -> str:
    """An aware datetime as ISO 8601 in UTC with `Z` (`2024-04-07T10:00:00Z`)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def check_choice(name: str, ok: bool, allowed: Any) -> None:
    """400 `invalid_parameter` naming `name` and what is `allowed`, unless `ok`."""
    if not ok:
        raise AppError(
            400, "invalid_parameter", f"invalid {name}; allowed: {allowed}", {"parameter": name, "allowed": allowed}
        )


def parse_range(
    raw_from: str | None,
    raw_to: str | None,
    group_by: str,
    allowed: tuple[str, ...],
    max_days: int,
    default_days: int,
    *,
    now: datetime | None = None,
) -> Range:
    """Validate `from`/`to`/`group_by` (see the module's docstring); `now` (aware) is the clock's default.

    Errors, in this order: `group_by` not in `allowed` (invalid_parameter); a bound that is not ISO 8601
    (invalid_parameter, `from` first); a default bound outside the supported dates (invalid_range, no
    details); `to` not after `from`, or more than `max_days` apart (invalid_range)."""
    check_choice("group_by", group_by in allowed, list(allowed))
    span = timedelta(days=default_days)
    try:
        start = _parse_bound("from", raw_from, upper=False) if raw_from else None
        if raw_to:
            end = _parse_bound("to", raw_to, upper=True)
        else:
            # now, rounded up to the second: the echoed `to` is exact and still covers this instant
            clock = (now or datetime.now(UTC)).astimezone(UTC)
            moment = start[0] + span if start else clock.replace(microsecond=0) + timedelta(seconds=1)
            end = (moment, iso_utc(moment))
        if start is None:
            start = (end[0] - span, iso_utc(end[0] - span))
    except OverflowError:
        raise AppError(400, "invalid_range", "the range is outside the supported dates") from None
    details = {"from": start[1], "to": end[1], "max_days": max_days}
    if end[0] <= start[0]:
        raise AppError(400, "invalid_range", "'to' must be after 'from'", details)
    if end[0] - start[0] > timedelta(days=max_days):
        raise AppError(400, "invalid_range", f"the range may span at most {max_days} days", details)
    return Range(start[0], end[0], (start[1], end[1]), group_by)


def check_paging(q: GlobalQuery) -> None:
    """400 `invalid_parameter` for the first of `page` (1..MAX_PAGE), `page_size` (1..MAX_PAGE_SIZE), `sort_by`
    (a key of SORT_COLUMNS) and `sort_order` (`asc`/`desc`) that is out of bounds."""
    check_choice("page", 1 <= q.page <= MAX_PAGE, f"1..{MAX_PAGE}")
    check_choice("page_size", 1 <= q.page_size <= MAX_PAGE_SIZE, f"1..{MAX_PAGE_SIZE}")
    check_choice("sort_by", q.sort_by in SORT_COLUMNS, list(SORT_COLUMNS))
    check_choice("sort_order", q.sort_order in ("asc", "desc"), ["asc", "desc"])


def _parse_bound(name: str, raw: str, *, upper: bool) -> tuple[datetime, str]:
    """An ISO 8601 date or datetime (naive = UTC) and its label. A date-only upper bound means the end of that
    day. Raises 400 invalid_parameter naming `name`."""
    value = _SPACED_OFFSET.sub(r"\1+\2", raw.strip())
    try:
        if _DATE_ONLY.fullmatch(value):
            midnight = datetime.combine(date.fromisoformat(value), time(), UTC)
            return midnight + timedelta(days=1 if upper else 0), value
        moment = datetime.fromisoformat(value)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        return moment, iso_utc(moment)
    except (ValueError, OverflowError):
        raise AppError(
            400, "invalid_parameter", f"'{name}' is not an ISO 8601 date or datetime", {"parameter": name}
        ) from None
