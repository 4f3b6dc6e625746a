"""Whether a booth's photo is taken on, decided from plain values (pure: no I/O, no HTTP framework).

`IngestService` reads the slot, the form and the provider's backlog, and asks these rules, in its order: the
slot id's shape, which configuration runs (a test run's), the provider's limits (None: the slot cannot run),
the upload cap, the photo's presence and size, the backlog, and when the booth gets its own photo instead.
Each refusal is the `AppError` the ingest endpoint documents. The provider whose limits, backlog and upload cap
apply is the one of the pipeline's first step (its own call): the photo the booth posts is that step's input.
`answer_due` is when the booth's answer is due: the wait, every retried statement and the fallback end there.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import replace
from datetime import datetime, timedelta

from boothbridge.catalog import Catalog, IngestLimits
from boothbridge.errors import AppError
from boothbridge.ingest.model import SlotForIngest, too_large
from boothbridge.slots.pipeline import slot_steps
from boothbridge.slots.rules import SlotUpdate

MAX_SLOT_ID_CHARS = 200  # no slot id is that long; a longer one is not looked up


def check_slot_id(slot_id: str) -> None:
    """404 `slot_not_found` for an id no slot can have: one holding NUL (PostgreSQL text cannot) or longer than
    MAX_SLOT_ID_CHARS. `details.slot_id` is the id without NULs, cut to that length (it is echoed back)."""
    if "\x00" in slot_id or len(slot_id) > MAX_SLOT_ID_CHARS:
        shown = slot_id.replace("\x00", "")[:MAX_SLOT_ID_CHARS]
        raise AppError(404, "slot_not_found", "no such slot", {"slot_id": shown})


def slot_for_run(slot: SlotForIngest, *, is_test: bool, config: SlotUpdate | None = None) -> SlotForIngest:
    """The slot as this request runs it. A booth's post runs the stored slot. An operator's test run never falls
    back to the original photo (the operator is there to see the provider's failure), and runs `config` (the
    slot page's unsaved, already validated configuration: its whole pipeline, steps, finishing and variants) when
    one is given."""
    if not is_test:
        return slot
    slot = replace(slot, failure_policy="error")
    if config is None:
        return slot
    return replace(
        slot,
        provider_id=config.provider_id,
        operation_id=config.operation_id,
        settings_json=config.settings_json,
        steps=config.pipeline_steps,
        finishing=dict(config.finishing),
        variants=dict(config.variants),
        variant_field=config.variant_field,
    )


def slot_limits(catalog: Catalog, available: Collection[str], slot: SlotForIngest) -> IngestLimits | None:
    """The ingest limits of the provider of the slot's first step, or None when the slot cannot run: not
    configured, its first step's own call cannot run, or a later step has no call that can and is not optional.
    A call cannot run when its provider does not offer its operation (the catalog changed) or is not one this
    deployment built (`available`: the provider ids it has adapters for)."""
    steps = slot_steps(slot.steps, slot.provider_id, slot.operation_id, slot.settings_json)
    if not steps:
        return None
    first = steps[0]
    if not _runnable(catalog, available, first):
        return None
    for step in steps[1:]:
        calls = [step, *step["alternatives"]]
        if not step["optional"] and not any(_runnable(catalog, available, call) for call in calls):
            return None
    entry = catalog.provider(first["provider_id"])
    return entry.ingest if entry else None


def _runnable(catalog: Catalog, available: Collection[str], call: dict[str, object]) -> bool:
    provider_id, operation_id = call.get("provider_id"), call.get("operation_id")
    if not isinstance(provider_id, str) or not isinstance(operation_id, str) or not provider_id or not operation_id:
        return False
    return catalog.supports(provider_id, operation_id) and provider_id in available


def answer_due(started: float, t_sync: float) -> float:
    """When the booth's answer is due, on `started`'s clock (time.monotonic() seconds): `t_sync` seconds (the
    slot's T_SYNC_RESPONSE, up to `settings.MAX_T_SYNC_SEC`) after the request started. The wait for the job, every
    retried statement of the request (`db_deadline`) and the booth's fallback moment end there."""
    return started + t_sync


def seconds_left(started: float, t_sync: float, now: float) -> float:
    """Seconds from `now` until the answer is due (negative once it is past)."""
    return answer_due(started, t_sync) - now


def upload_cap(max_upload_bytes: int, limits: IngestLimits | None) -> int:
    """The most bytes the photo may have: the deployment's cap, or the provider's own when that is lower."""
    return min(max_upload_bytes, limits.max_file_size_bytes) if limits else max_upload_bytes


def require_limits(limits: IngestLimits | None) -> IngestLimits:
    """409 `slot_not_configured` when the slot cannot run (see `slot_limits`)."""
    if limits is None:
        raise AppError(409, "slot_not_configured", "this slot has no provider and operation configured")
    return limits


def require_photo(size: int | None, max_bytes: int) -> None:
    """A posted photo of `size` bytes (None: the form had no `fileToUpload` part) is refused with 400
    `file_missing`, 400 `file_empty`, or 413 `file_too_large` (`details.max_bytes`) over `max_bytes`. Whether it
    is an image is checked after this."""
    if size is None:
        raise AppError(400, "file_missing", "the form has no fileToUpload part")
    if size == 0:
        raise AppError(400, "file_empty", "the uploaded file is empty")
    if size > max_bytes:
        raise too_large(max_bytes)


def fallback_at(failure_policy: str, now: datetime, seconds_left: float) -> datetime | None:
    """When the booth is answered with its own photo if no result has come (policy `original`): `seconds_left`
    (until its answer is due; never before `now`) from `now`. The worker starts no paid attempt that cannot end
    before then. None when the booth waits for a result or a 504 (after which the job goes on and a re-post
    collects the kept result)."""
    if failure_policy != "original":
        return None
    return now + timedelta(seconds=max(seconds_left, 0.0))


def check_backlog(
    provider_id: str, limits: IngestLimits, depth: int, *, backlog_factor: int, job_deadline_sec: float
) -> None:
    """Back-pressure: 503 `provider_backlog_full` with `Retry-After` when the provider's backlog (`depth`: its
    queued and running booth jobs) reaches `max_parallel_jobs * backlog_factor` (`Retry-After: 5`, details
    `provider_id`, `in_flight`, `limit`), or when a job queued behind it could not end before its deadline
    (`Retry-After` from `backlog_wait`, details `provider_id`, `in_flight`, `estimated_end_sec`,
    `job_deadline_sec`). A job accepted and then dropped at its deadline (its photo kept for nothing, the booth
    told 504 and its re-post 502) helps nobody: the booth is told now, and uses its own photo or posts again."""
    cap = limits.max_parallel_jobs * backlog_factor
    if depth >= cap:
        raise AppError(
            503,
            "provider_backlog_full",
            "too many photos are waiting for this provider; try again shortly",
            {"provider_id": provider_id, "in_flight": depth, "limit": cap},
            headers={"Retry-After": "5"},
        )
    ends_in, retry_after = backlog_wait(limits, depth, job_deadline_sec)
    if retry_after is not None:
        raise AppError(
            503,
            "provider_backlog_full",
            "the photos waiting for this provider would keep this one past its deadline; try again shortly",
            {
                "provider_id": provider_id,
                "in_flight": depth,
                "estimated_end_sec": round(ends_in, 1),
                "job_deadline_sec": job_deadline_sec,
            },
            headers={"Retry-After": str(retry_after)},
        )


def backlog_wait(limits: IngestLimits, depth: int, job_deadline_sec: float) -> tuple[float, int | None]:
    """When a job queued now behind `depth` queued and running jobs of a provider would end, in seconds (an
    estimate: each round of `max_parallel_jobs` jobs takes the catalog's `typical_sec`), and, when that is past
    the job's deadline, the seconds after which enough of the backlog should have gone for a new job to fit
    (None: it fits now). A provider without `typical_sec` gives no estimate; nor does an empty queue (a single
    attempt that cannot end in time is the worker's to refuse)."""
    if limits.typical_sec <= 0 or depth <= 0:
        return 0.0, None
    parallel = max(1, limits.max_parallel_jobs)
    rounds = depth // parallel + 1
    ends_in = rounds * limits.typical_sec
    if ends_in <= job_deadline_sec:
        return ends_in, None
    rounds_that_fit = math.floor(job_deadline_sec / limits.typical_sec)
    return ends_in, max(1, math.ceil((rounds - rounds_that_fit) * limits.typical_sec))
