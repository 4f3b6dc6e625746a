"""Where a job is in its pipeline, as the operator sees it: the phase, the progress fraction, and the list of steps
(pure: plain values in, JSON-ready values out; `boothbridge.jobs.view` reads the rows).

Phase (one word for what the job does now, besides its coarse status):
- `queued`: waiting for a worker (new, between steps, or before a retry);
- `processing_<operation_id>`: a worker runs the step's provider call (`processing_style_transfer`);
- `waiting_provider`: parked until an asynchronous provider calls back;
- `uploading_image`: the worker stores the step's output (the job row's `phase` column; any other value a
  worker writes there is shown as is);
- once the job ended, its status: `succeeded`, `failed`, `cancelled`.

Progress, 0.0-1.0: each planned step is an equal share; finished steps (succeeded or skipped) count whole and the
step the job is at counts by its phase (`STEP_SHARE`: queued 0, processing 0.3, waiting for the provider 0.5,
storing the output 0.9 — the provider's work is most of a step, storing its output the last bit). A succeeded job
is 1.0. A failed or cancelled job keeps what its finished steps reached (the step it stopped in produced nothing,
so it counts 0). As a job advances (queued, processing, waiting, storing, next step, ..., succeeded) the fraction
never goes down; a retry of the same step goes back to that step's `queued` share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from boothbridge.jobs.status import JobStatus

QUEUED, WAITING_PROVIDER, UPLOADING_IMAGE = "queued", "waiting_provider", "uploading_image"
PROCESSING_PREFIX = "processing_"
PENDING = "pending"  # a step the job has not reached (a step entry's status and phase)

# The share of its step a job has done, by phase (see the module docstring); an unknown phase counts as processing.
STEP_SHARE: Mapping[str, float] = {QUEUED: 0.0, "processing": 0.3, WAITING_PROVIDER: 0.5, UPLOADING_IMAGE: 0.9}


def phase(status: str, operation_id: str, phase_column: str | None) -> str:
    """The job's phase from its status, the operation it runs now and the row's `phase` column (None: the status
    says it). A terminal or parked status wins over the column (a column left over from the attempt that ended)."""
    if status in JobStatus.TERMINAL:
        return str(status)
    if status == JobStatus.QUEUED:
        return QUEUED
    if status == JobStatus.WAITING_PROVIDER:
        return WAITING_PROVIDER
    return phase_column or f"{PROCESSING_PREFIX}{operation_id}"


def step_share(current_phase: str) -> float:
    """How much of its step a job in `current_phase` has done (0.0-1.0); see `STEP_SHARE`."""
    if current_phase.startswith(PROCESSING_PREFIX):
        return STEP_SHARE["processing"]
    return STEP_SHARE.get(current_phase, STEP_SHARE["processing"])


def progress(step_index: int, step_count: int, status: str, current_phase: str) -> float:
    """The job's progress, 0.0-1.0, rounded to 3 places: `step_index` (0-based) steps done, plus the current
    step's share by phase, over `step_count` (at least 1). Succeeded: 1.0; failed or cancelled: the finished
    steps only. A `step_index` past the last step counts as the last step."""
    count = max(step_count, 1)
    done = min(max(step_index, 0), count - 1)
    if status == JobStatus.SUCCEEDED:
        return 1.0
    if status in JobStatus.TERMINAL:
        return round(done / count, 3)
    return round((done + step_share(current_phase)) / count, 3)


def step_count(planned_count: int | None) -> int:
    """The number of steps of a job whose pipeline plans `planned_count` steps (None or 0: a job from before
    pipelines, one step, the job's own provider and operation)."""
    return planned_count if planned_count else 1


@dataclass(frozen=True)
class StepNow:
    """The step a job is at, as its row says (the job's own provider/operation name the alternative it runs)."""

    index: int
    alternative: int
    provider_id: str
    operation_id: str
    status: str  # the job's status
    phase_column: str | None
    attempts: int  # `attempt - step_attempt_base`
    started_at: datetime | None  # `step_started_at`; None for a step not started yet
    job_started_at: datetime | None  # the job's first start: the first step's clock for jobs from before steps
    finished_at: datetime | None  # the job's end, once it ended
    cost: float | None  # the job's cost minus its finished steps' costs; None when the job's cost is unknown
    error_code: str | None
    error_message: str | None
    output_media_id: str | None  # the job's result, once it succeeded


def _iso(raw: str | datetime | None) -> str | None:
    """A timestamp as the API writes it (`isoformat()`), from a datetime or from the ISO text JSON carried."""
    if raw is None:
        return None
    moment = raw if isinstance(raw, datetime) else datetime.fromisoformat(raw)
    return moment.isoformat()


def _ms(started: str | None, finished: str | None) -> int | None:
    """Whole milliseconds between two of `_iso`'s timestamps (floored), None unless both are known."""
    if started is None or finished is None:
        return None
    return (datetime.fromisoformat(finished) - datetime.fromisoformat(started)) // timedelta(milliseconds=1)


def _error(code: str | None, message: str | None) -> dict[str, str] | None:
    return {"code": code, "message": message or ""} if code else None


def _finished_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """A job_steps row (as the view's statement aggregates it) as a step entry."""
    started, finished = _iso(row.get("started_at")), _iso(row.get("finished_at"))
    cost = row.get("cost")
    return {
        "index": int(row["index"]),
        "provider_id": row["provider_id"],
        "operation_id": row["operation_id"],
        "alternative": int(row["alternative"]),
        "status": row["status"],
        "phase": row["status"],
        "attempts": int(row["attempts"]),
        "started_at": started,
        "finished_at": finished,
        "ms": _ms(started, finished),
        "cost": None if cost is None else float(cost),
        "error": _error(row.get("error_code"), row.get("error_message")),
        "output_media_id": None if row.get("output_media_id") is None else str(row["output_media_id"]),
    }


def _current_entry(now: StepNow, has_finished: bool) -> dict[str, Any]:
    ended = now.status in JobStatus.TERMINAL
    # A job from before steps (or one that never left its first step) has no step clock: the job's start is it.
    started = _iso(now.started_at if now.started_at is not None or has_finished else now.job_started_at)
    finished = _iso(now.finished_at) if ended else None
    return {
        "index": now.index,
        "provider_id": now.provider_id,
        "operation_id": now.operation_id,
        "alternative": now.alternative,
        "status": str(now.status),
        "phase": phase(now.status, now.operation_id, now.phase_column),
        "attempts": max(now.attempts, 0),
        "started_at": started,
        "finished_at": finished,
        "ms": _ms(started, finished),
        # Nothing is known of a step that has not run; the money of the steps before it is theirs.
        "cost": now.cost if now.attempts > 0 or ended else None,
        "error": _error(now.error_code, now.error_message) if now.status in JobStatus.ENDED_IN_ERROR else None,
        "output_media_id": now.output_media_id if now.status == JobStatus.SUCCEEDED else None,
    }


def step_entries(
    planned: Sequence[Sequence[str | None]] | None, finished: Sequence[Mapping[str, Any]], now: StepNow
) -> list[dict[str, Any]]:
    """The job detail's `steps`: one entry per step-and-alternative tried, in (step, alternative) order — the
    job_steps rows (`finished`), and the step the job is at (`now`, unless a job_steps row already records it) —
    then one `pending` entry per planned step after it. `planned`: each step's (provider_id, operation_id), None
    or empty for a one-step job from before pipelines."""
    tried = [_finished_entry(row) for row in finished]
    recorded = {(entry["index"], entry["alternative"]) for entry in tried}
    if (now.index, now.alternative) not in recorded:
        tried.append(_current_entry(now, bool(tried)))
    tried.sort(key=lambda entry: (entry["index"], entry["alternative"]))
    pending = []
    for index in range(now.index + 1, step_count(len(planned) if planned else None)):
        provider_id, operation_id = planned[index] if planned else (None, None)
        pending.append(
            {
                "index": index,
                "provider_id": provider_id or "",
                "operation_id": operation_id or "",
                "alternative": 0,
                "status": PENDING,
                "phase": PENDING,
                "attempts": 0,
                "started_at": None,
                "finished_at": None,
                "ms": None,
                "cost": None,
                "error": None,
                "output_media_id": None,
            }
        )
    return tried + pending


def failed_step(now: StepNow) -> dict[str, Any] | None:
    """Where a failed job stopped: its step and the alternative that failed last; None unless it failed."""
    if now.status != JobStatus.FAILED:
        return None
    return {
        "index": now.index,
        "alternative": now.alternative,
        "provider_id": now.provider_id,
        "operation_id": now.operation_id,
    }
