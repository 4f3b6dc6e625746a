"""Moving a job along its pipeline after a provider call: the worker's and the webhook path's one way to do it.

After a call produced an image (`succeeded`) the job either moves to its next step — the image stored as that
step's input, the step recorded, the job queued for the next provider in one fenced statement — or it is at its
end: the finishing stage (`boothbridge.images.finishing`) makes the final image, which the caller then completes
the job with as before. After a call failed for good (`failed_for_good`) the job moves to the step's next
alternative, or past an optional step, or (None) the caller fails it as before. The decisions are the pure ones
of `boothbridge.jobs.pipeline`; the SQL is in `boothbridge.jobs.step_statements`. Issue 14.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString

from psycopg.types.json import Jsonb

from boothbridge.catalog import Catalog
from boothbridge.jobs import step_statements as sql
from boothbridge.jobs.model import JobRecord
from boothbridge.jobs.pipeline import Move, Plan, after_failure, after_success, plan_of
from boothbridge.jobs.statements import attempt_errors_entry
from boothbridge.media.ref import MediaRef
from boothbridge.media.service import MediaExpired, MediaNotFound, MediaService
from boothbridge.providers.base import ImageInput, ProviderError, ProviderResult

log = logging.getLogger(__name__)

# A step's output outlives its job's deadline by this much (no attempt starts after the deadline).
INPUT_GRACE = timedelta(minutes=1)

# Runs a fenced move: (statement, params) -> whether it applied. The worker's goes through database outages (its
# step's output is paid for); the webhook path's is one try (the provider delivers again on an error answer).
Mover = Callable[[LiteralString, dict[str, Any]], Any]


@dataclass(frozen=True)
class Fence:
    """Who moves the job: the attempt holding it (`hash_` None) or the callback presenting its secret."""

    attempt: int
    hash_: str | None = None

    @property
    def statement(self) -> LiteralString:
        return sql.MOVE if self.hash_ is None else sql.MOVE_BY_CALLBACK

    def params(self, job_id: uuid.UUID) -> dict[str, Any]:
        if self.hash_ is None:
            return {"id": job_id, "attempt": self.attempt}
        return {"id": job_id, "hash": self.hash_}


def plan(job: JobRecord) -> Plan:
    return plan_of(job.pipeline, job.provider_id, job.operation_id, job.settings_json, job.max_attempts)


class PipelineSteps:
    """Moves jobs between steps; finishes the last step's image. One per runner and one per webhook service."""

    def __init__(self, media: MediaService, catalog: Catalog) -> None:
        self.media = media
        self.catalog = catalog

    @staticmethod
    def has_stages(job: JobRecord) -> bool:
        """Whether the job is more than one call: several steps, or a finishing stage after its call."""
        steps = plan(job)
        return steps.count > 1 or bool(steps.finishing)

    # ---- after a call ------------------------------------------------------------------------------------

    async def succeeded(
        self, job: JobRecord, result: ProviderResult, fence: Fence, move: Mover, result_ttl_sec: int
    ) -> ProviderResult | bool:
        """The call's image (already through the image boundary): True when the job moved to its next step (False:
        the fence refused, the stored output is dropped), else the final image to complete the job with."""
        steps = plan(job)
        where = after_success(steps, job.step_index)
        if where.kind == "finish":
            return await self._finish(steps, result)
        ref = await self.media.write_bytes("result", result.image.data, result.image.mime)
        # Kept like a result, and at least until the job can no longer run (its next step's input: a result TTL
        # shorter than the job's deadline must not expire it under the job).
        expires = max(datetime.now(UTC) + timedelta(seconds=result_ttl_sec), job.deadline_at + INPUT_GRACE)
        try:
            moved = await self._move(
                job, steps, where, fence, move, status="succeeded", output=(ref, expires), cost=result.cost
            )
        except BaseException:
            await self.media.drop_bytes(ref)
            raise
        if not moved:
            await self.media.drop_bytes(ref)
        return moved

    async def failed_for_good(
        self, job: JobRecord, err: ProviderError, message: str, fence: Fence, move: Mover
    ) -> ProviderResult | bool | None:
        """A call that failed with no retry to come: True/False when the job moved to an alternative or past an
        optional step (False: the fence refused); the final image when a skipped last step ends the pipeline (made
        from the current input); None when the job fails (the caller records that as before)."""
        seconds_left = (job.last_useful_end - datetime.now(UTC)).total_seconds()
        steps = plan(job)
        where = after_failure(
            steps,
            job.step_index,
            job.alternative,
            err.code,
            seconds_left=seconds_left,
            typical_sec=self.catalog.typical_sec,
        )
        if where.kind == "fail":
            return None
        if where.kind == "finish":
            try:
                data, ref = await self.media.read(job.input_media_id or job.source_media_id)
            except (MediaNotFound, MediaExpired):
                return None
            log.info("job %s: optional last step %s skipped (%s)", job.id, job.step_index, err.code)
            return await self._finish(steps, ProviderResult(ImageInput(data, ref.mime), 0.0))
        status = "skipped" if where.skipped else "failed"
        log.info(
            "job %s: step %s alternative %s failed (%s); moving to step %s alternative %s",
            job.id, job.step_index, job.alternative, err.code, where.step_index, where.alternative,
        )  # fmt: skip
        return await self._move(job, steps, where, fence, move, status=status, error=(err, message))

    async def _move(
        self,
        job: JobRecord,
        steps: Plan,
        where: Move,
        fence: Fence,
        move: Mover,
        *,
        status: str,
        output: tuple[MediaRef, datetime] | None = None,
        cost: float | None = None,
        error: tuple[ProviderError, str] | None = None,
    ) -> bool:
        assert where.call is not None
        params: dict[str, Any] = {
            **fence.params(job.id),
            "to_step": where.step_index,
            "to_alt": where.alternative,
            "provider": where.call.provider_id,
            "operation": where.call.operation_id,
            "settings": Jsonb(where.call.settings_json),
            "step_attempts": steps.max_attempts,
            "cost": cost,
            "code": error[0].code if error else None,
            "message": error[1] if error else None,
            "entry": (
                attempt_errors_entry(job.attempt, error[0].code, error[1], error[0].retryable, error[0].details())
                if error
                else Jsonb([])
            ),
            "from_step": job.step_index,
            "from_alt": job.alternative,
            "from_provider": job.provider_id,
            "from_operation": job.operation_id,
            "step_status": status,
            "attempts": max(job.attempt - job.step_attempt_base, 0),
            "step_started": job.step_started_at or job.started_at,
            "output": output[0].id if output else None,
            "m_key": output[0].storage_key if output else None,
            "m_mime": output[0].mime if output else None,
            "m_size": output[0].size_bytes if output else None,
            "m_sha": output[0].sha256 if output else None,
            "m_expires": output[1] if output else None,
        }
        return bool(await move(fence.statement, params))

    # ---- the end -----------------------------------------------------------------------------------------

    async def _finish(self, steps: Plan, result: ProviderResult) -> ProviderResult:
        """The pipeline's final image: `result` through its finishing stage (unchanged when it has none).
        Raises ProviderError `finishing_*` / `overlay_*` (final: no provider can cure it)."""
        spec_raw = steps.finishing
        if not spec_raw:
            return result
        from boothbridge.images.finishing import FinishingError, finish_image, parse_finishing

        spec = parse_finishing(spec_raw)
        if spec.is_noop:
            return result
        overlay = None
        if spec.overlay_media_id:
            try:
                overlay, _ = await self.media.read(uuid.UUID(str(spec.overlay_media_id)))
            except (ValueError, MediaNotFound, MediaExpired) as exc:
                raise ProviderError(
                    "overlay_missing", "the slot's overlay image is missing or expired", retryable=False
                ) from exc
        try:
            data, mime = await asyncio.to_thread(finish_image, result.image.data, result.image.mime, spec, overlay)
        except FinishingError as exc:
            raise ProviderError(exc.code, exc.message, retryable=False) from exc
        return replace(result, image=ImageInput(data, mime))  # further outputs and data as they came
