"""Where a job is in its pipeline (`boothbridge.jobs.progress`, pure): its phase, its progress fraction (never
going down as the job advances), the step list of the job detail, the step a failed job stopped at; and the view's
statements keep the house's placeholder style. No database."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from boothbridge.jobs import view_statements
from boothbridge.jobs.progress import StepNow, failed_step, phase, progress, step_count, step_entries, step_share
from boothbridge.jobs.status import JobStatus, sql_list
from tests.unit.test_jobs_statements import COLON_PLACEHOLDER, LONE_PERCENT

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def now_at(**overrides: Any) -> StepNow:
    base = StepNow(
        index=0,
        alternative=0,
        provider_id="local",
        operation_id="reframe",
        status="queued",
        phase_column=None,
        attempts=0,
        started_at=None,
        job_started_at=None,
        finished_at=None,
        cost=None,
        error_code=None,
        error_message=None,
        output_media_id=None,
    )
    return dataclasses.replace(base, **overrides)


# ---- phase -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "column", "expected"),
    [
        ("queued", None, "queued"),
        ("queued", "uploading_image", "queued"),  # a column left by an earlier attempt says nothing now
        ("running", None, "processing_style_transfer"),
        ("running", "uploading_image", "uploading_image"),
        ("waiting_provider", None, "waiting_provider"),
        ("waiting_provider", "uploading_image", "waiting_provider"),
        ("succeeded", None, "succeeded"),
        ("failed", "uploading_image", "failed"),
        ("cancelled", None, "cancelled"),
    ],
)
def test_phase_from_the_status_the_operation_and_the_column(status: str, column: str | None, expected: str) -> None:
    assert phase(status, "style_transfer", column) == expected


def test_every_status_has_a_phase_and_every_terminal_one_is_itself() -> None:
    for status in JobStatus:
        value = phase(status, "echo", None)
        assert value == (status.value if status.is_terminal else value)
        assert isinstance(value, str) and value
    assert {phase(s, "echo", None) for s in JobStatus.TERMINAL} == {"succeeded", "failed", "cancelled"}


# ---- progress ----------------------------------------------------------------------------------------------


def test_the_shares_of_a_step_by_phase() -> None:
    assert [step_share(p) for p in ("queued", "processing_echo", "waiting_provider", "uploading_image")] == [
        0.0,
        0.3,
        0.5,
        0.9,
    ]
    assert step_share("something_new") == 0.3  # a phase a worker may write later counts as processing


def test_progress_of_a_three_step_job() -> None:
    assert progress(0, 3, "queued", "queued") == 0.0
    assert progress(0, 3, "running", "processing_reframe") == 0.1
    assert progress(1, 3, "waiting_provider", "waiting_provider") == 0.5
    assert progress(2, 3, "running", "uploading_image") == 0.967
    assert progress(2, 3, "succeeded", "succeeded") == 1.0
    # Failed or cancelled: what the finished steps reached; the step it stopped in made nothing.
    assert progress(2, 3, "failed", "failed") == 0.667
    assert progress(1, 3, "cancelled", "cancelled") == 0.333
    assert progress(0, 1, "failed", "failed") == 0.0


def test_progress_of_a_one_step_job_and_odd_counts() -> None:
    assert progress(0, 1, "running", "processing_echo") == 0.3
    assert progress(0, 1, "running", "uploading_image") == 0.9
    assert progress(0, 0, "running", "processing_echo") == 0.3  # no planned steps: one step
    assert progress(5, 3, "running", "processing_x") == 0.767  # past the last step: the last step
    assert progress(-1, 2, "queued", "queued") == 0.0


def test_progress_never_goes_down_as_a_job_advances() -> None:
    """Every state a three-step job passes through on its way to success, in order (an alternative of step 1
    taking over, a parked call at step 2): the fraction rises or stays, from 0 to 1. A retry (or the next
    alternative) of the same step starts that step's share again, never below the steps already finished."""
    walk = [
        (0, "queued", None),
        (0, "running", None),
        (0, "running", "uploading_image"),
        (1, "queued", None),  # moved on
        (1, "running", None),  # the step's own provider fails for good ...
        (1, "queued", None),  # ... and its alternative is queued: the same step's share again
        (1, "running", None),
        (1, "running", "uploading_image"),
        (2, "queued", None),
        (2, "running", None),
        (2, "waiting_provider", None),
        (2, "succeeded", None),  # the callback brought the last step's image
    ]
    figures = [progress(i, 3, status, phase(status, "op", column)) for i, status, column in walk]
    advancing = figures[:5] + figures[6:]  # without the requeue within step 1
    assert advancing == sorted(advancing)
    assert (figures[0], figures[-1]) == (0.0, 1.0)
    assert figures[5] == figures[3] == round(1 / 3, 3)  # requeued: step 1's queued share, step 0 still counted


def test_step_count() -> None:
    assert [step_count(None), step_count(0), step_count(1), step_count(4)] == [1, 1, 1, 4]


# ---- the step list -----------------------------------------------------------------------------------------


def finished(index: int, alternative: int, status: str, **extra: Any) -> dict[str, Any]:
    """A job_steps row as the view's statement aggregates it (JSON: timestamps as ISO text)."""
    row: dict[str, Any] = {
        "index": index,
        "alternative": alternative,
        "provider_id": "gemini",
        "operation_id": "change_image",
        "status": status,
        "attempts": 1,
        "started_at": T0.isoformat(),
        "finished_at": (T0 + timedelta(milliseconds=1500)).isoformat(),
        "cost": None,
        "error_code": None,
        "error_message": None,
        "output_media_id": None,
    }
    return row | extra


PLANNED = [["local", "reframe"], ["gemini", "change_image"], ["local", "resize"]]


def test_a_legacy_job_queued_is_one_step() -> None:
    [entry] = step_entries(None, [], now_at(provider_id="sleepy", operation_id="echo"))
    assert entry == {
        "index": 0,
        "provider_id": "sleepy",
        "operation_id": "echo",
        "alternative": 0,
        "status": "queued",
        "phase": "queued",
        "attempts": 0,
        "started_at": None,
        "finished_at": None,
        "ms": None,
        "cost": None,
        "error": None,
        "output_media_id": None,
    }
    assert failed_step(now_at()) is None


def test_tried_steps_in_order_then_the_current_one_then_the_pending_ones() -> None:
    rows = [
        finished(0, 0, "succeeded", provider_id="local", operation_id="reframe", cost=0.25, output_media_id="m0"),
        finished(1, 0, "failed", attempts=2, error_code="upstream_unavailable", error_message="503"),
    ]
    current = now_at(
        index=1,
        alternative=1,
        provider_id="turbotext",
        operation_id="change_image",
        status="running",
        attempts=1,
        started_at=T0 + timedelta(seconds=2),
        job_started_at=T0,
        cost=0.0,
    )
    entries = step_entries(PLANNED, list(reversed(rows)), current)
    assert [(e["index"], e["alternative"], e["status"], e["phase"]) for e in entries] == [
        (0, 0, "succeeded", "succeeded"),
        (1, 0, "failed", "failed"),
        (1, 1, "running", "processing_change_image"),
        (2, 0, "pending", "pending"),
    ]
    assert entries[0]["ms"] == 1500 and entries[0]["cost"] == 0.25 and entries[0]["output_media_id"] == "m0"
    assert entries[1]["error"] == {"code": "upstream_unavailable", "message": "503"}
    assert entries[1]["attempts"] == 2
    # The current step's clock is its own (not the job's first start); no end yet.
    assert entries[2]["started_at"] == (T0 + timedelta(seconds=2)).isoformat()
    assert (entries[2]["finished_at"], entries[2]["ms"], entries[2]["cost"]) == (None, None, 0.0)
    assert (entries[3]["provider_id"], entries[3]["operation_id"]) == ("local", "resize")


def test_a_first_step_without_its_own_clock_uses_the_jobs_start() -> None:
    current = now_at(status="succeeded", attempts=1, job_started_at=T0, finished_at=T0 + timedelta(seconds=3))
    [entry] = step_entries(None, [], dataclasses.replace(current, output_media_id="r1", cost=0.5))
    assert (entry["started_at"], entry["ms"], entry["output_media_id"], entry["cost"]) == (
        T0.isoformat(),
        3000,
        "r1",
        0.5,
    )


def test_a_step_that_has_not_run_costs_nothing_known() -> None:
    current = now_at(index=1, status="queued", attempts=0, cost=0.0, job_started_at=T0)
    entries = step_entries(PLANNED, [finished(0, 0, "succeeded", cost=0.1)], current)
    assert (entries[1]["cost"], entries[1]["started_at"]) == (None, None)  # the job's start is step 0's


def test_a_recorded_current_step_is_shown_once_from_its_record() -> None:
    current = now_at(index=1, status="succeeded", attempts=1, provider_id="gemini", operation_id="change_image")
    rows = [finished(0, 0, "succeeded"), finished(1, 0, "succeeded", output_media_id="m1")]
    entries = step_entries(PLANNED[:2], rows, current)
    assert [(e["index"], e["status"], e["output_media_id"]) for e in entries] == [
        (0, "succeeded", None),
        (1, "succeeded", "m1"),
    ]


def test_a_failed_job_names_the_step_and_alternative_that_failed() -> None:
    current = now_at(
        index=2,
        alternative=1,
        provider_id="turbotext",
        operation_id="style_transfer",
        status="failed",
        attempts=3,
        error_code="upstream_rejected",
        error_message="no",
    )
    assert failed_step(current) == {
        "index": 2,
        "alternative": 1,
        "provider_id": "turbotext",
        "operation_id": "style_transfer",
    }
    [entry] = step_entries(None, [], dataclasses.replace(current, index=0))
    assert entry["error"] == {"code": "upstream_rejected", "message": "no"}
    assert failed_step(dataclasses.replace(current, status="cancelled")) is None
    # A job running again after a failed alternative keeps that error in its row; the step shows none.
    [entry] = step_entries(None, [], dataclasses.replace(current, index=0, status="running"))
    assert entry["error"] is None


# ---- the statements ----------------------------------------------------------------------------------------


def test_the_views_statements_use_psycopgs_placeholders_and_the_enums_sets() -> None:
    texts = {name: value for name, value in vars(view_statements).items() if name.startswith("JOB_")}
    assert set(texts) == {"JOB_DETAIL", "JOB_PAGE", "JOB_STATE"}
    for name, text in texts.items():
        assert not LONE_PERCENT.search(text.replace("%%", "")), name
        assert not COLON_PLACEHOLDER.search(text), name
        assert "%(uid)s" in text, name  # ownership is part of every read
    assert f"j.status IN {sql_list(JobStatus.TERMINAL)}" in view_statements.JOB_STATE
    assert "job_steps" not in view_statements.JOB_STATE  # the stream's read stays on primary keys
    # The page's steps are aggregated inside the page's subquery, after LIMIT, never over the filtered list.
    page = view_statements.JOB_PAGE
    assert page.index("LIMIT %(limit)s") < page.index("LEFT JOIN LATERAL") < page.index(") page_rows ON true")
