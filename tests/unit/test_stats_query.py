"""A statistics request's parameters (boothbridge.stats.query), without I/O: defaults, the endpoints' groupings
and longest spans, dates and datetimes with offsets (across a daylight-saving change too), bad input, and the
global endpoint's paging and sorting, each with the operator API's error code and details."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from boothbridge.errors import AppError
from boothbridge.stats.query import (
    GLOBAL_DEFAULT_DAYS,
    GLOBAL_GROUPS,
    GLOBAL_MAX_DAYS,
    MAX_PAGE,
    MAX_PAGE_SIZE,
    SLOT_DEFAULT_DAYS,
    SLOT_GROUPS,
    SLOT_MAX_DAYS,
    GlobalQuery,
    Range,
    check_paging,
    iso_utc,
    parse_range,
)

NOW = datetime(2024, 4, 10, 8, 30, 15, 250_000, tzinfo=UTC)


def _slot(raw_from: str | None, raw_to: str | None, group_by: str = "day") -> Range:
    return parse_range(raw_from, raw_to, group_by, SLOT_GROUPS, SLOT_MAX_DAYS, SLOT_DEFAULT_DAYS, now=NOW)


def _global(raw_from: str | None, raw_to: str | None, group_by: str = "week") -> Range:
    return parse_range(raw_from, raw_to, group_by, GLOBAL_GROUPS, GLOBAL_MAX_DAYS, GLOBAL_DEFAULT_DAYS, now=NOW)


def _refusal(call: Callable[[], object]) -> AppError:
    """The AppError `call` raises (the test fails if it raises nothing)."""
    with pytest.raises(AppError) as info:
        call()
    return info.value


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# ---- defaults --------------------------------------------------------------------------------------------


def test_the_endpoints_limits_are_those_the_api_documents() -> None:
    assert (SLOT_GROUPS, SLOT_MAX_DAYS, SLOT_DEFAULT_DAYS) == (("hour", "day", "week"), 31, 7)
    assert (GLOBAL_GROUPS, GLOBAL_MAX_DAYS, GLOBAL_DEFAULT_DAYS) == (("day", "week", "month"), 90, 30)


def test_no_bounds_are_the_default_span_up_to_now_rounded_up_to_the_second() -> None:
    rng = _slot(None, None)
    assert rng.end == _at("2024-04-10T08:30:16") and rng.start == rng.end - timedelta(days=7)
    assert rng.json() == {"from": "2024-04-03T08:30:16Z", "to": "2024-04-10T08:30:16Z", "group_by": "day"}
    assert _global(None, None).start == rng.end - timedelta(days=30)


def test_now_on_a_whole_second_still_moves_up_one_second() -> None:
    rng = parse_range(None, None, "day", SLOT_GROUPS, 31, 7, now=_at("2024-04-10T08:30:00"))
    assert rng.end == _at("2024-04-10T08:30:01")  # the echoed `to` covers this very instant


def test_the_clock_is_read_when_no_now_is_given() -> None:
    before = datetime.now(UTC)
    rng = parse_range(None, None, "day", SLOT_GROUPS, 31, 7)
    assert before < rng.end <= datetime.now(UTC) + timedelta(seconds=1)
    assert rng.end.microsecond == 0


def test_only_from_spans_the_default_after_it_and_only_to_the_default_before_it() -> None:
    after = _slot("2024-04-01", None)
    assert (after.start, after.end) == (_at("2024-04-01T00:00"), _at("2024-04-08T00:00"))
    assert after.labels == ("2024-04-01", "2024-04-08T00:00:00Z")
    before = _slot(None, "2024-04-07")
    assert (before.start, before.end) == (_at("2024-04-01T00:00"), _at("2024-04-08T00:00"))
    assert before.labels == ("2024-04-01T00:00:00Z", "2024-04-07")


# ---- dates, datetimes, offsets ---------------------------------------------------------------------------


def test_a_date_only_to_includes_that_whole_day_and_dates_are_echoed_as_sent() -> None:
    rng = _slot("2024-04-01", "2024-04-07")
    assert (rng.start, rng.end) == (_at("2024-04-01T00:00"), _at("2024-04-08T00:00"))
    assert rng.json() == {"from": "2024-04-01", "to": "2024-04-07", "group_by": "day"}


def test_a_naive_datetime_is_utc_and_an_offset_is_converted() -> None:
    rng = _slot("2024-04-01T10:00:00", "2024-04-02T10:00:00+02:00", "hour")
    assert (rng.start, rng.end) == (_at("2024-04-01T10:00"), _at("2024-04-02T08:00"))
    assert rng.labels == ("2024-04-01T10:00:00Z", "2024-04-02T08:00:00Z")
    assert rng.start.tzinfo is UTC and rng.end.tzinfo is UTC


@pytest.mark.parametrize(
    "raw",
    [
        "2024-04-02T10:00:00 02:00",
        "2024-04-02T10:00 0200",
        "2024-04-02T10:00:00.5 02:00",
        " 2024-04-02T10:00:00+02:00 ",
    ],
)
def test_an_offset_whose_plus_arrived_as_a_space_is_still_an_offset(raw: str) -> None:
    assert _slot("2024-04-01", raw, "hour").end.replace(microsecond=0) == _at("2024-04-02T08:00")


def test_a_range_across_a_daylight_saving_change_is_exact_in_utc() -> None:
    # Berlin moved from +01:00 to +02:00 at 2024-03-31 02:00 local: a local "day" that night is 23 hours.
    rng = _slot("2024-03-31T00:00:00+01:00", "2024-04-01T00:00:00+02:00", "hour")
    assert (rng.start, rng.end) == (_at("2024-03-30T23:00"), _at("2024-03-31T22:00"))
    assert rng.end - rng.start == timedelta(hours=23)


def test_z_and_fractions_are_accepted() -> None:
    rng = _slot("2024-04-01T10:00:00.123456Z", "2024-04-01T11:00:00Z", "hour")
    assert rng.start == _at("2024-04-01T10:00:00.123456") and rng.labels[0] == "2024-04-01T10:00:00.123456Z"


def test_iso_utc_writes_z() -> None:
    assert iso_utc(datetime.fromisoformat("2024-04-01T12:00:00+02:00")) == "2024-04-01T10:00:00Z"


# ---- group_by and the longest spans ----------------------------------------------------------------------


@pytest.mark.parametrize("group_by", SLOT_GROUPS)
def test_each_slot_grouping_is_accepted(group_by: str) -> None:
    assert _slot("2024-04-01", "2024-04-07", group_by).group_by == group_by


@pytest.mark.parametrize("group_by", GLOBAL_GROUPS)
def test_each_global_grouping_is_accepted(group_by: str) -> None:
    assert _global("2024-04-01", "2024-04-07", group_by).group_by == group_by


@pytest.mark.parametrize(
    ("rng", "allowed", "group_by"),
    [
        (_slot, list(SLOT_GROUPS), "month"),  # the global endpoint's, not this one's
        (_slot, list(SLOT_GROUPS), "Day"),  # case matters
        (_slot, list(SLOT_GROUPS), ""),
        (_global, list(GLOBAL_GROUPS), "hour"),  # the slot endpoint's, not this one's
        (_global, list(GLOBAL_GROUPS), "year"),
    ],
)
def test_a_grouping_the_endpoint_does_not_offer_is_invalid_parameter(
    rng: Callable[..., Range], allowed: list[str], group_by: str
) -> None:
    err = _refusal(lambda: rng("2024-04-01", "2024-04-07", group_by))
    assert (err.status, err.code) == (400, "invalid_parameter")
    assert err.details == {"parameter": "group_by", "allowed": allowed}


def test_the_grouping_is_checked_before_the_dates() -> None:
    err = _refusal(lambda: _slot("yesterday", None, "month"))
    assert err.details["parameter"] == "group_by"


def test_the_longest_spans_are_accepted_and_one_more_instant_is_not() -> None:
    assert _slot("2024-04-01", "2024-05-01").end - _slot("2024-04-01", "2024-05-01").start == timedelta(days=31)
    assert _global("2024-01-01", "2024-03-30").end == _at("2024-03-31T00:00")  # 90 days
    for call, max_days in [
        (lambda: _slot("2024-04-01", "2024-05-02"), 31),
        (lambda: _slot("2024-04-01T00:00:00Z", "2024-05-02T00:00:01Z"), 31),
        (lambda: _global("2024-01-01", "2024-03-31"), 90),
    ]:
        err = _refusal(call)
        assert (err.status, err.code, err.message) == (
            400,
            "invalid_range",
            f"the range may span at most {max_days} days",
        )
        assert err.details["max_days"] == max_days


# ---- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_from", "raw_to"),
    [("2024-04-08", "2024-04-01"), ("2024-04-01T10:00:00Z", "2024-04-01T10:00:00Z"), ("2024-04-02", "2024-04-01")],
)
def test_to_not_after_from_is_invalid_range_with_the_bounds_as_understood(raw_from: str, raw_to: str) -> None:
    err = _refusal(lambda: _slot(raw_from, raw_to))
    assert (err.status, err.code, err.message) == (400, "invalid_range", "'to' must be after 'from'")
    rng_labels = {"from": err.details["from"], "to": err.details["to"]}
    assert rng_labels == {"from": raw_from.replace("+00:00", "Z"), "to": raw_to.replace("+00:00", "Z")}
    assert err.details["max_days"] == SLOT_MAX_DAYS


def test_a_one_day_range_given_as_the_same_date_twice_is_that_day() -> None:
    rng = _slot("2024-04-01", "2024-04-01")
    assert rng.end - rng.start == timedelta(days=1)


@pytest.mark.parametrize(
    ("raw_from", "raw_to", "name"),
    [
        ("yesterday", None, "from"),
        (None, "2024-02-30", "to"),
        ("2024-13-01", "2024-04-01", "from"),
        ("2024-04-01", "2024-04-01T25:00:00", "to"),
        ("2024-04-01T10:00:00 Europe/Berlin", None, "from"),  # zone names are not ISO 8601
        ("bad", "worse", "from"),  # the first bad bound is named
    ],
)
def test_a_bound_that_is_not_iso_8601_is_invalid_parameter_naming_it(
    raw_from: str | None, raw_to: str | None, name: str
) -> None:
    err = _refusal(lambda: _slot(raw_from, raw_to))
    assert (err.status, err.code) == (400, "invalid_parameter")
    assert err.details == {"parameter": name}
    assert err.message == f"'{name}' is not an ISO 8601 date or datetime"


def test_the_end_of_the_calendar_is_refused_not_a_crash() -> None:
    assert _refusal(lambda: _slot("2024-04-01", "9999-12-31")).details == {"parameter": "to"}  # its next midnight
    outside = _refusal(lambda: _slot("9999-12-30", None))  # the default `to` is past year 9999
    assert (outside.code, outside.message, outside.details) == (
        "invalid_range",
        "the range is outside the supported dates",
        {},
    )
    early = _refusal(lambda: _slot(None, "0001-01-03"))  # the default `from` is before year 1
    assert early.code == "invalid_range"


# ---- paging and sorting ----------------------------------------------------------------------------------


def test_the_default_query_and_the_bounds_are_accepted() -> None:
    check_paging(GlobalQuery())
    check_paging(GlobalQuery(page=MAX_PAGE, page_size=MAX_PAGE_SIZE, sort_by="cost", sort_order="asc"))
    for sort_by in ("period_start", "success", "errors", "cost"):
        check_paging(GlobalQuery(sort_by=sort_by))


@pytest.mark.parametrize(
    ("query", "parameter", "allowed"),
    [
        (GlobalQuery(page=0), "page", f"1..{MAX_PAGE}"),
        (GlobalQuery(page=MAX_PAGE + 1), "page", f"1..{MAX_PAGE}"),
        (GlobalQuery(page_size=0), "page_size", f"1..{MAX_PAGE_SIZE}"),
        (GlobalQuery(page_size=MAX_PAGE_SIZE + 1), "page_size", f"1..{MAX_PAGE_SIZE}"),
        (GlobalQuery(sort_by="avg_response_ms"), "sort_by", ["period_start", "success", "errors", "cost"]),
        (GlobalQuery(sort_order="up"), "sort_order", ["asc", "desc"]),
        (GlobalQuery(sort_order="DESC"), "sort_order", ["asc", "desc"]),
        (GlobalQuery(page=0, sort_order="up"), "page", f"1..{MAX_PAGE}"),  # the first problem is reported
    ],
)
def test_paging_and_sorting_out_of_bounds_is_invalid_parameter(
    query: GlobalQuery, parameter: str, allowed: object
) -> None:
    err = _refusal(lambda: check_paging(query))
    assert (err.status, err.code) == (400, "invalid_parameter")
    assert err.details == {"parameter": parameter, "allowed": allowed}
    assert err.message == f"invalid {parameter}; allowed: {allowed}"
