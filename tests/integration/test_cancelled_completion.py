"""An attempt cancelled while its completion is in flight (a stopping worker cancels what has not ended after
its grace period and hand-back wait): the completion statement may still commit (a grouped one always runs on),
so the result object is kept when the job recorded it and deleted only when the job is known not to have.

Found in a review of the grouped completions (jobs.completions): the runner deleted the result on any exception,
cancellation included, and a job could end `succeeded` pointing at a deleted result (its booth's answer and its
re-posts: 502, the paid result lost)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.media.ref import MediaRef
from boothbridge.media.service import MediaNotFound
from tests.fakes.sleepy import sleepy_catalog
from tests.integration.test_queue import new_job


@pytest.fixture
def settings_overrides(tmp_path: Path) -> dict[str, Any]:
    return {"providers_config": sleepy_catalog(tmp_path / "p.json"), "run_worker": False}


class HeldCompletions:
    """The container's grouped completions, each group held until `go` is set; `sent` is set when one arrives."""

    def __init__(self, container: Container) -> None:
        self.groups = container.queue.completions
        self.run = self.groups._run
        self.sent = asyncio.Event()
        self.go = asyncio.Event()
        self.groups._run = self._held

    async def _held(self, group: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
        self.sent.set()
        await self.go.wait()
        return await self.run(group)


def stored_results(container: Container, monkeypatch: pytest.MonkeyPatch) -> list[MediaRef]:
    """The result objects the runner writes from now on."""
    refs: list[MediaRef] = []
    write = container.media.write_bytes

    async def recorded(kind: str, data: bytes, mime: str) -> MediaRef:
        ref = await write(kind, data, mime)
        if kind == "result":
            refs.append(ref)
        return ref

    monkeypatch.setattr(container.media, "write_bytes", recorded)
    return refs


async def cancelled_in_completion(container: Container, held: HeldCompletions) -> Any:
    """Claim a new job, run its attempt, cancel the attempt once its completion is sent; the job."""
    job = await new_job(container)
    [claimed] = await container.queue.claim("w", 1)
    attempt = asyncio.create_task(container.runner.run(claimed))
    await asyncio.wait_for(held.sent.wait(), 30)
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    container.queue.release(claimed)
    return job


async def settled(container: Container) -> None:
    """Until the completion and the runner's follow-up work (a deletion) have ended."""
    for _ in range(500):
        if not container.runner._kicks and not container.queue.completions._pending:
            flusher = container.queue.completions._flusher
            if flusher is None or flusher.done():
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the completion never settled")


async def test_a_result_the_job_recorded_is_kept_when_the_attempt_is_cancelled(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = stored_results(container, monkeypatch)
    held = HeldCompletions(container)
    job = await cancelled_in_completion(container, held)
    held.go.set()
    await settled(container)
    final = await container.queue.get(job.id)
    assert final is not None and final.status == "succeeded"
    assert [ref.id for ref in refs] == [final.result_media_id]
    data, ref = await container.media.read(final.result_media_id)  # the job's result is there to answer with
    assert data and ref.kind == "result"


async def test_a_result_the_job_did_not_record_is_deleted_when_the_attempt_is_cancelled(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = stored_results(container, monkeypatch)
    held = HeldCompletions(container)
    job = await cancelled_in_completion(container, held)
    # Meanwhile an operator cancelled the job: the completion's fence refuses it, nothing records the result.
    async with container.engine.begin() as conn:
        cancel = text("UPDATE jobs SET status = 'cancelled', finished_at = now() WHERE id = :id")
        await conn.execute(cancel, {"id": job.id})
    held.go.set()
    await settled(container)
    final = await container.queue.get(job.id)
    assert final is not None and final.status == "cancelled" and final.result_media_id is None
    [ref] = refs
    with pytest.raises(MediaNotFound):
        await container.media.read_described(ref)
