"""Whether a booth's photo is taken on (boothbridge.ingest.admission), without I/O, over the real catalog: the
slot id's shape, a test run's configuration, the provider's limits, the upload cap, the photo's presence and
size, the backlog's two refusals, and when the booth gets its own photo instead."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from boothbridge.catalog import Catalog, IngestLimits
from boothbridge.errors import AppError
from boothbridge.ingest.admission import (
    MAX_SLOT_ID_CHARS,
    backlog_wait,
    check_backlog,
    check_slot_id,
    fallback_at,
    require_limits,
    require_photo,
    slot_for_run,
    slot_limits,
    upload_cap,
)
from boothbridge.ingest.model import SlotForIngest
from boothbridge.slots.rules import SlotUpdate

CATALOG = Catalog.load(Path(__file__).resolve().parents[2] / "configs" / "providers.json")
ALL = frozenset(CATALOG.providers)
MB = 1024 * 1024
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SLOT = SlotForIngest(
    id="slot-001",
    provider_id="gemini",
    operation_id="change_image",
    settings_json={"prompt": "p"},
    failure_policy="original",
    password_digest="d",
)


def _refusal(call: Callable[[], object]) -> AppError:
    """The AppError `call` raises (the test fails if it raises nothing)."""
    with pytest.raises(AppError) as info:
        call()
    return info.value


# ---- the slot id ---------------------------------------------------------------------------------------


def test_a_slot_id_of_any_ordinary_shape_is_looked_up() -> None:
    for slot_id in ("slot-001", "x" * MAX_SLOT_ID_CHARS, "ünïcode", ""):
        check_slot_id(slot_id)


@pytest.mark.parametrize(
    ("slot_id", "echoed"),
    [("slot\x00-001", "slot-001"), ("x" * (MAX_SLOT_ID_CHARS + 1), "x" * MAX_SLOT_ID_CHARS), ("\x00" * 300, "")],
)
def test_a_slot_id_no_slot_can_have_is_404_with_a_cleaned_echo(slot_id: str, echoed: str) -> None:
    err = _refusal(lambda: check_slot_id(slot_id))
    assert (err.status, err.code, err.details) == (404, "slot_not_found", {"slot_id": echoed})


# ---- which configuration runs ----------------------------------------------------------------------------


def test_a_booth_post_runs_the_stored_slot_with_its_policy() -> None:
    config = SlotUpdate("n", "local", "reframe", {"aspect_ratio": "1:1"})
    assert slot_for_run(SLOT, is_test=False) is SLOT
    assert slot_for_run(SLOT, is_test=False, config=config) is SLOT  # a config is a test run's only


def test_a_test_run_never_falls_back_and_runs_the_unsaved_configuration() -> None:
    stored = slot_for_run(SLOT, is_test=True)
    assert stored.failure_policy == "error"
    assert (stored.provider_id, stored.operation_id, stored.settings_json) == (
        "gemini",
        "change_image",
        {"prompt": "p"},
    )
    config = SlotUpdate("n", "local", "reframe", {"aspect_ratio": "1:1"}, failure_policy="original")
    unsaved = slot_for_run(SLOT, is_test=True, config=config)
    assert (unsaved.provider_id, unsaved.operation_id, unsaved.settings_json) == (
        "local",
        "reframe",
        config.settings_json,
    )
    assert unsaved.failure_policy == "error"  # not the config's: a test run shows the failure
    assert (unsaved.id, unsaved.password_digest) == (SLOT.id, SLOT.password_digest)


# ---- the provider's limits and the upload cap ------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider_id", "operation_id"),
    [("gemini", "change_image"), ("turbotext", "face_swap"), ("local", "reframe"), ("local", "resize")],
)
def test_a_configured_slot_gets_its_provider_s_limits(provider_id: str, operation_id: str) -> None:
    slot = SlotForIngest("s", provider_id, operation_id, {}, "error", None)
    entry = CATALOG.provider(provider_id)
    assert entry is not None and slot_limits(CATALOG, ALL, slot) is entry.ingest


@pytest.mark.parametrize(
    ("provider_id", "operation_id", "available"),
    [
        (None, None, ALL),  # never configured (or reset)
        ("gemini", None, ALL),
        (None, "reframe", ALL),
        ("", "", ALL),
        ("gemini", "face_swap", ALL),  # an operation the provider does not offer (the catalog changed)
        ("nobody", "reframe", ALL),  # a provider the catalog no longer has
        ("turbotext", "face_swap", ALL - {"turbotext"}),  # a provider this deployment did not build
    ],
)
def test_a_slot_that_cannot_run_has_no_limits_and_is_409(
    provider_id: str | None, operation_id: str | None, available: frozenset[str]
) -> None:
    slot = SlotForIngest("s", provider_id, operation_id, {}, "error", None)
    assert slot_limits(CATALOG, available, slot) is None
    err = _refusal(lambda: require_limits(None))
    assert (err.status, err.code) == (409, "slot_not_configured")


def test_require_limits_passes_limits_through() -> None:
    limits = IngestLimits(2, 45, ("image/jpeg",), 15)
    assert require_limits(limits) is limits


def test_the_upload_cap_is_the_lower_of_the_deployment_s_and_the_provider_s() -> None:
    turbotext = IngestLimits(2, 45, ("image/jpeg",), 15)
    assert upload_cap(20 * MB, turbotext) == 15 * MB
    assert upload_cap(10 * MB, turbotext) == 10 * MB
    assert upload_cap(20 * MB, None) == 20 * MB  # an unconfigured slot: the body is still bounded


# ---- the photo -------------------------------------------------------------------------------------------


def test_a_photo_up_to_the_cap_inclusive_is_taken() -> None:
    require_photo(1, 100)
    require_photo(100, 100)


@pytest.mark.parametrize(
    ("size", "code", "status"),
    [(None, "file_missing", 400), (0, "file_empty", 400), (101, "file_too_large", 413)],
)
def test_a_missing_empty_or_too_large_photo_is_refused(size: int | None, code: str, status: int) -> None:
    err = _refusal(lambda: require_photo(size, 100))
    assert (err.status, err.code) == (status, code)
    assert err.details == ({"max_bytes": 100} if code == "file_too_large" else {})


# ---- the backlog -----------------------------------------------------------------------------------------

GEMINI = IngestLimits(max_parallel_jobs=4, timeout_sec=45, allowed_mime=("image/jpeg",), max_file_size_mb=20)
TIMED = IngestLimits(4, 45, ("image/jpeg",), 20, typical_sec=10)  # 4 at once, 10 s each


def test_backlog_wait_estimates_rounds_of_parallel_jobs() -> None:
    assert backlog_wait(TIMED, 0, 150) == (0.0, None)  # an empty queue: the worker's to judge
    assert backlog_wait(TIMED, 3, 150) == (10.0, None)  # behind 3 with 4 at once: the first round
    assert backlog_wait(TIMED, 4, 150) == (20.0, None)
    assert backlog_wait(TIMED, 59, 150) == (150.0, None)  # ends exactly at the deadline: fits
    assert backlog_wait(TIMED, 60, 150) == (160.0, 10)  # one round too many: 10 s until it fits
    assert backlog_wait(TIMED, 79, 150) == (200.0, 50)
    assert backlog_wait(GEMINI, 500, 150) == (0.0, None)  # no typical_sec: no estimate
    odd = IngestLimits(0, 45, ("image/jpeg",), 20, typical_sec=7)  # max_parallel_jobs 0 counts as 1
    assert backlog_wait(odd, 21, 150) == (154.0, 7)  # 22 rounds of 7 s; 21 fit in 150 s: 1 round (7 s) over


def test_a_backlog_that_fits_is_accepted() -> None:
    check_backlog("gemini", TIMED, 59, backlog_factor=16, job_deadline_sec=150)
    check_backlog("gemini", GEMINI, 63, backlog_factor=16, job_deadline_sec=150)


def test_a_backlog_at_the_cap_is_503_retry_in_5_seconds() -> None:
    err = _refusal(lambda: check_backlog("gemini", GEMINI, 64, backlog_factor=16, job_deadline_sec=150))
    assert (err.status, err.code) == (503, "provider_backlog_full")
    assert err.details == {"provider_id": "gemini", "in_flight": 64, "limit": 64}
    assert err.headers == {"Retry-After": "5"}


def test_a_backlog_that_would_keep_the_job_past_its_deadline_is_503_until_it_would_fit() -> None:
    err = _refusal(lambda: check_backlog("gemini", TIMED, 60, backlog_factor=16, job_deadline_sec=150))
    assert (err.status, err.code) == (503, "provider_backlog_full")
    assert err.details == {
        "provider_id": "gemini",
        "in_flight": 60,
        "estimated_end_sec": 160.0,
        "job_deadline_sec": 150,
    }
    assert err.headers == {"Retry-After": "10"}
    assert "past its deadline" in err.message


def test_the_cap_is_checked_before_the_estimate() -> None:
    err = _refusal(lambda: check_backlog("gemini", TIMED, 64, backlog_factor=16, job_deadline_sec=150))
    assert err.headers == {"Retry-After": "5"} and err.details["limit"] == 64


# ---- the original-photo moment ---------------------------------------------------------------------------


def test_policy_original_answers_with_the_photo_when_the_booth_s_wait_ends() -> None:
    assert fallback_at("original", NOW, 47.5) == NOW + timedelta(seconds=47.5)
    assert fallback_at("original", NOW, -3.0) == NOW  # already late (a slow upload): now, never before


def test_policy_error_has_no_fallback_moment() -> None:
    assert fallback_at("error", NOW, 47.5) is None
