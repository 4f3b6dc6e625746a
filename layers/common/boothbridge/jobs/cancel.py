"""Cancelling a job (`POST /api/jobs/{id}/cancel`): one fenced statement, the same rules as the rest of the queue.

What cancelling does, by the job's state:
- `queued` (new, or waiting for a retry): cancelled at once; no worker will claim it (the claim re-checks the
  row under its lock, and a cancelled row is not claimable).
- `running`: the row is cancelled at once and the attempt loses the job: its next heartbeat finds the job no
  longer `running` for its attempt and the worker cancels the provider call locally (the coroutine, and with it
  the HTTP request to the provider, is cancelled). So the call stops within one heartbeat interval. A result that
  still arrives is discarded by the completion fence (`status = 'running'`): the job stays cancelled, no result
  media row is written and the bytes are deleted. Work a provider with a cancel API already accepted is stopped
  there too: a running attempt records the provider's id of it as soon as it is submitted
  (`ProviderRequest.submitted`, `CallbackQueue.recorder`), and a known id is asked to cancel as below; a submit
  still in flight when the cancel ran finds the job cancelled when it records its id, and asks itself.
- `waiting_provider`: cancelled at once; the provider's later callback finds the job finished and changes
  nothing (the webhook fence).
- in both, a provider with a cancel API (`CancellableProvider`: fal's queue) is then asked, best effort, to stop
  the work named by the job's `provider_ref`: its answer is logged, a failure to ask is logged too and never fails
  the cancel (the job is cancelled here either way).
- finished (`succeeded`, `failed`, `cancelled`): nothing changes; 409 `job_finished`.

The statement (`statements.CANCEL`: ownership, the fenced update and the NOTIFY in one) runs on the operator
side's SQLAlchemy connection. Waiters are woken like for any other ending: NOTIFY `bb_job_done` inside the
statement (other processes), and `hub.job_ended` for this process's waiters at once. A booth request waiting for
the job is answered 502 `job_cancelled` (or with its original photo, if the slot says so).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, LiteralString, NamedTuple

from boothbridge.errors import AppError
from boothbridge.jobs import statements as sql
from boothbridge.jobs.notifications import NotificationHub
from boothbridge.jobs.view import job_not_found
from boothbridge.providers.base import CancellableProvider, ProviderError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


class ProviderWork(NamedTuple):
    """What a provider knows a job's work by: its id there (`provider_ref`) and the operation and settings (fal's
    cancel URL names the model)."""

    provider_id: str
    provider_ref: str
    operation_id: str
    settings_json: Mapping[str, Any] | None


# What the provider knows the cancelled job by (read after the cancel: the statement ends the wait, not the work).
_PROVIDER_WORK = "SELECT provider_id, provider_ref, operation_id, settings_json FROM jobs WHERE id = %(id)s"


async def cancel_job(
    db: AsyncEngine,
    hub: NotificationHub | None,
    user_id: int,
    username: str,
    job_id: uuid.UUID,
    providers: Mapping[str, Any] | None = None,
    *,
    statement: LiteralString = sql.CANCEL,
    not_found: Callable[[uuid.UUID], AppError] = job_not_found,
    message: str | None = None,
) -> None:
    """Cancel the operator's job. 404 `job_not_found` if it is not theirs (or does not exist), 409 `job_finished`
    if it already ended. `db`: the autocommit engine (the statement is its own transaction). `providers` (the
    process's adapters by id): a cancelled job's provider with a cancel API is asked to stop its work.
    A machine client's task (`boothbridge.tasks`) passes `statement` `CANCEL_TASK` (owned by `user_id`), its
    own `not_found` error and the `message` recorded (default: "cancelled by operator <username>")."""
    message = message or f"cancelled by operator {username}"
    async with db.connect() as conn:
        params = {"id": job_id, "uid": user_id, "message": message}
        row = (await conn.exec_driver_sql(statement, params)).one_or_none()
        if row is None:
            raise not_found(job_id)
        if not row.cancelled:
            # It was finished already, or it finished while the cancel waited for the row: say how it ended.
            status = (await conn.exec_driver_sql(sql.STATUS, {"id": job_id})).scalar_one()
            raise AppError(
                409, "job_finished", f"the job has already ended ({status})", {"job_id": str(job_id), "status": status}
            )
        work = (await conn.exec_driver_sql(_PROVIDER_WORK, {"id": job_id})).one_or_none() if providers else None
    if hub is not None:
        hub.job_ended(job_id)  # this process's waiters now; other processes hear the NOTIFY
    if work is not None and work.provider_ref and providers is not None:
        await cancel_at_provider(providers.get(work.provider_id), work, job_id)


async def cancel_at_provider(provider: object, work: ProviderWork | Any, job_id: uuid.UUID) -> None:
    """Best effort: ask a provider with a cancel API to stop the job's work; logs the outcome, never raises."""
    if not isinstance(provider, CancellableProvider):
        return
    try:
        answer = await provider.cancel(work.provider_ref, work.operation_id, work.settings_json or {})
    except ProviderError as err:
        log.warning("job %s: %s could not be asked to cancel (%s)", job_id, work.provider_id, err.code)
    except Exception:
        log.exception("job %s: asking %s to cancel failed", job_id, work.provider_id)
    else:
        log.info("job %s: %s answered the cancel with %s", job_id, work.provider_id, answer or "nothing")
