"""The job queue against real PostgreSQL: dedupe, concurrent claims, per-provider limits, fencing by attempt,
lease takeover, retries, and the runner's retry/failure paths with the sleepy provider."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.jobs.model import JobRecord, NewJob
from boothbridge.jobs.worker_loop import run_job_by_id
from boothbridge.media.service import MediaRef
from tests.fakes.sleepy import SleepyProvider, sleepy_catalog
from tests.support.booth import jpeg

PHOTO = jpeg(64, 48)


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Per-test overrides through indirect parametrisation; `max_parallel_jobs` becomes a sleepy catalog."""
    params = dict(getattr(request, "param", {}))
    limit = params.pop("max_parallel_jobs", None)
    if limit is not None:
        params["providers_config"] = sleepy_catalog(tmp_path / "limited.json", max_parallel_jobs=limit)
    return params


def _unique_sha() -> str:
    return hashlib.sha256(uuid.uuid4().bytes).hexdigest()


async def enqueue(
    c: Container,
    *,
    sha: str | None = None,
    settings_json: dict[str, Any] | None = None,
    max_attempts: int = 3,
    slot_id: str = "slot-001",
) -> tuple[JobRecord | None, bool, MediaRef]:
    source = await c.media.write_bytes("source", PHOTO, "image/jpeg")
    now = datetime.now(UTC)
    new = NewJob(
        id=uuid.uuid4(),
        slot_id=slot_id,
        provider_id="sleepy",
        operation_id="echo",
        settings_json=settings_json or {},
        source_media_id=source.id,
        source_sha256=sha or _unique_sha(),
        max_attempts=max_attempts,
        deadline_at=now + timedelta(seconds=120),
        request_meta={},
    )
    job, created = await c.queue.enqueue(new, source, now + timedelta(minutes=10))
    return job, created, source


async def new_job(c: Container, **kwargs: Any) -> JobRecord:
    job, created, _ = await enqueue(c, **kwargs)
    assert created and job is not None
    return job


async def result_ref(c: Container) -> MediaRef:
    return await c.media.write_bytes("result", PHOTO, "image/jpeg")


async def expire_lease(c: Container, job_id: uuid.UUID) -> None:
    """The job's lease ran out while the database was up: a moment ago, and after the server started (a lease that
    ran out before the server started is given one whole lease more; a test may run within a second of the start)."""
    async with c.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE jobs SET lease_expires_at = now() - least(interval '1 second',"
                " (now() - pg_postmaster_start_time()) / 2) WHERE id = :id"
            ),
            {"id": job_id},
        )


async def job_row(c: Container, job_id: uuid.UUID) -> Any:
    async with c.engine.connect() as conn:
        return (await conn.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": job_id})).one()


async def scalar(c: Container, sql: str, **params: Any) -> Any:
    async with c.engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def running_count(c: Container) -> int:
    n: int = await scalar(c, "SELECT count(*) FROM jobs WHERE status = 'running' AND lease_expires_at > now()")
    return n


# ---- enqueue ---------------------------------------------------------------------------------------------


async def test_enqueue_of_an_active_duplicate_inserts_nothing(container: Container) -> None:
    sha = _unique_sha()
    first, created, first_source = await enqueue(container, sha=sha)
    assert created and first is not None
    assert (first.status, first.attempt) == ("queued", 0)

    second, created2, second_source = await enqueue(container, sha=sha)

    assert (second, created2) == (None, False)
    assert await scalar(container, "SELECT count(*) FROM jobs WHERE source_sha256 = :s", s=sha) == 1
    # The duplicate's source row was rolled back with it; only the first job's source is recorded.
    media = await scalar(container, "SELECT array_agg(id) FROM media_objects WHERE kind = 'source'")
    assert media == [first_source.id]
    assert second_source.id != first_source.id
    # Another slot, or a finished first job, does not block the same bytes.
    other, created3, _ = await enqueue(container, sha=sha, slot_id="slot-002")
    assert created3 and other is not None
    [claimed] = await container.queue.claim("w", 1, only_id=first.id)
    assert await container.queue.fail_attempt(claimed.id, 1, "x", "y", False, None) == "failed"
    again, created4, _ = await enqueue(container, sha=sha)
    assert created4 and again is not None and again.id != first.id


# ---- claiming --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"max_parallel_jobs": 100}], indirect=True)
async def test_concurrent_claimers_never_share_a_job_and_take_them_all(container: Container) -> None:
    queue = container.queue
    jobs = await asyncio.gather(*(new_job(container) for _ in range(30)))
    expected = {j.id for j in jobs}
    taken: list[tuple[str, JobRecord]] = []
    start = asyncio.Event()

    async def claimer(owner: str) -> None:
        await start.wait()
        loop = asyncio.get_running_loop()
        stop_at = loop.time() + 15
        while len(taken) < len(expected) and loop.time() < stop_at:
            got = await queue.claim(owner, 3)
            taken.extend((owner, job) for job in got)
            await asyncio.sleep(0 if got else 0.01)

    tasks = [asyncio.create_task(claimer(f"owner-{i}")) for i in range(8)]
    start.set()
    await asyncio.gather(*tasks)

    ids = [job.id for _, job in taken]
    assert len(ids) == len(set(ids)), "a job was claimed twice"
    assert set(ids) == expected
    async with container.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, status, attempt, lease_owner FROM jobs"))).all()
    by_id = {owner_job[1].id: owner_job[0] for owner_job in taken}
    assert len(rows) == 30
    for row in rows:
        assert (row.status, row.attempt) == ("running", 1)
        assert row.lease_owner == by_id[row.id]


async def test_claim_skips_a_job_another_claimer_has_locked(container: Container) -> None:
    """A row locked by a claimer in the middle of its transaction is passed over, not waited for."""
    queue = container.queue
    locked = await new_job(container)
    free = await new_job(container)
    async with container.engine.connect() as other:
        await other.execute(text("SELECT id FROM jobs WHERE id = :id FOR UPDATE"), {"id": locked.id})

        got = await asyncio.wait_for(queue.claim("w", 5), 3)
        assert [j.id for j in got] == [free.id]
        assert await asyncio.wait_for(queue.claim("w", 1, only_id=locked.id), 3) == []

        await other.rollback()
    [later] = await queue.claim("w", 5)
    assert (later.id, later.attempt) == (locked.id, 1)


@pytest.mark.parametrize("settings_overrides", [{"max_parallel_jobs": 2}], indirect=True)
async def test_provider_limit_holds_under_concurrent_claimers(container: Container) -> None:
    queue = container.queue
    assert queue.limits["sleepy"] == 2  # the catalog's max_parallel_jobs reaches the queue
    # More jobs than one claimer scans (16 for max_jobs=1), so concurrent claimers see disjoint candidates
    # and only the per-provider serialisation keeps them from all taking a place at once.
    jobs = {j.id for j in await asyncio.gather(*(new_job(container) for _ in range(40)))}
    finished: set[uuid.UUID] = set()
    peak = rounds = 0

    while finished != jobs and rounds < 200:
        rounds += 1
        running_before = await running_count(container)
        batches = await asyncio.gather(*(queue.claim(f"owner-{i}", 1 + i % 2) for i in range(8)))
        claimed = [job for batch in batches for job in batch]
        running = await running_count(container)
        assert running <= 2, f"{running} running with a limit of 2"
        assert len(claimed) == running - running_before
        peak = max(peak, running)
        # Finish one running job (alternately succeeding and failing): exactly one place frees up, so the
        # next round's claimers must respect the job still running.
        async with container.engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT id, attempt FROM jobs WHERE status = 'running' ORDER BY created_at LIMIT 1")
                )
            ).one_or_none()
        if row is None:
            continue
        if rounds % 2:
            assert await queue.fail_attempt(row.id, row.attempt, "x", "y", False, None) == "failed"
        else:
            assert await queue.complete(row.id, row.attempt, await result_ref(container), _later(), 0.0)
        finished.add(row.id)

    assert finished == jobs
    assert peak == 2  # the limit was reached, not merely respected by claiming nothing


async def test_expired_lease_is_taken_over_with_the_next_attempt(container: Container) -> None:
    queue = container.queue
    job = await new_job(container)
    [first] = await queue.claim("worker-a", 1)
    assert (first.id, first.attempt, first.status) == (job.id, 1, "running")
    assert await queue.claim("worker-b", 1) == []  # the lease is still valid

    await expire_lease(container, job.id)
    [second] = await queue.claim("worker-b", 1)

    assert (second.id, second.attempt, second.status) == (job.id, 2, "running")
    assert second.started_at == first.started_at
    row = await job_row(container, job.id)
    assert row.lease_owner == "worker-b"
    assert row.lease_expires_at > datetime.now(UTC)


@pytest.mark.parametrize("settings_overrides", [{"lease_sec": 0.3}], indirect=True)
async def test_short_lease_runs_out_by_itself(container: Container) -> None:
    job = await new_job(container)
    [first] = await container.queue.claim("worker-a", 1)
    assert first.attempt == 1
    await asyncio.sleep(0.5)
    [second] = await container.queue.claim("worker-b", 1)
    assert (second.id, second.attempt) == (job.id, 2)


async def test_expired_lease_on_the_last_attempt_fails_the_job(container: Container) -> None:
    queue = container.queue
    assert container.hub is not None
    queue.max_lease_expiries = 1  # the second expiry is one too many (MAX_LEASE_EXPIRIES, not max_attempts)
    job = await new_job(container, max_attempts=2)
    for expected_attempt in (1, 2):
        [claimed] = await queue.claim("w", 1)
        assert claimed.attempt == expected_attempt
        await expire_lease(container, job.id)

    with container.hub.subscribe(job.id) as ended:
        assert await queue.claim("w", 1) == []
        await asyncio.wait_for(ended.wait(), 5)  # waiters are told it ended

    row = await job_row(container, job.id)
    assert (row.status, row.attempt, row.error_code) == ("failed", 2, "lease_expired")
    assert row.finished_at is not None
    assert row.lease_owner is None and row.lease_expires_at is None
    assert await queue.claim("w", 1) == []


# ---- fencing ---------------------------------------------------------------------------------------------


async def test_complete_is_fenced_by_attempt(container: Container) -> None:
    queue = container.queue
    job = await new_job(container)
    await queue.claim("worker-a", 1)
    await expire_lease(container, job.id)
    [current] = await queue.claim("worker-b", 1)
    assert current.attempt == 2

    stale_ref = await result_ref(container)
    assert await queue.complete(job.id, 1, stale_ref, _later(), 1.5) is None
    row = await job_row(container, job.id)
    assert (row.status, row.attempt, row.result_media_id, row.cost) == ("running", 2, None, None)
    assert row.lease_owner == "worker-b"
    assert await scalar(container, "SELECT count(*) FROM media_objects WHERE id = :id", id=stale_ref.id) == 0
    assert await queue.fail_attempt(job.id, 1, "late", "late failure", True, 0.1) is None
    assert (await job_row(container, job.id)).status == "running"

    good_ref = await result_ref(container)
    assert await queue.complete(job.id, 2, good_ref, _later(), 0.25) is not None
    row = await job_row(container, job.id)
    assert (row.status, row.result_media_id, float(row.cost)) == ("succeeded", good_ref.id, 0.25)
    assert row.finished_at is not None and row.lease_owner is None
    kind_job = await scalar(
        container, "SELECT kind || ':' || job_id::text FROM media_objects WHERE id = :id", id=good_ref.id
    )
    assert kind_job == f"result:{job.id}"

    # Finished: the same attempt cannot complete twice either.
    assert await queue.complete(job.id, 2, await result_ref(container), _later(), 9.0) is None
    assert (await job_row(container, job.id)).result_media_id == good_ref.id


async def test_heartbeat_of_a_stale_attempt_is_refused(container: Container) -> None:
    queue = container.queue
    job = await new_job(container)
    await queue.claim("worker-a", 1)
    assert await queue.heartbeat(job.id, 1) is True
    await expire_lease(container, job.id)
    await queue.claim("worker-b", 1)
    before = (await job_row(container, job.id)).lease_expires_at

    assert await queue.heartbeat(job.id, 1) is False
    assert (await job_row(container, job.id)).lease_expires_at == before

    await asyncio.sleep(0.05)
    assert await queue.heartbeat(job.id, 2) is True
    assert (await job_row(container, job.id)).lease_expires_at > before
    assert await queue.complete(job.id, 2, await result_ref(container), _later(), 0.0)
    assert await queue.heartbeat(job.id, 2) is False  # a finished job has no lease to extend


# ---- failures and retries --------------------------------------------------------------------------------


async def test_fail_attempt_with_retry_requeues_for_later(container: Container) -> None:
    queue = container.queue
    job = await new_job(container)
    [claimed] = await queue.claim("w", 1)

    status = await queue.fail_attempt(job.id, claimed.attempt, "upstream_unavailable", "down", True, 0.8)

    assert status == "queued"
    row = await job_row(container, job.id)
    assert (row.status, row.lease_owner, row.lease_expires_at) == ("queued", None, None)
    assert (row.error_code, row.error_message, row.finished_at) == ("upstream_unavailable", "down", None)
    assert row.run_after > datetime.now(UTC) + timedelta(seconds=0.4)
    [entry] = row.attempt_errors
    assert {k: entry[k] for k in ("attempt", "code", "message", "retryable")} == {
        "attempt": 1,
        "code": "upstream_unavailable",
        "message": "down",
        "retryable": True,
    }
    assert datetime.fromisoformat(entry["at"]) <= datetime.now(UTC)

    assert await queue.claim("w", 1) == []  # not before run_after
    wait = (row.run_after - datetime.now(UTC)).total_seconds()
    await asyncio.sleep(max(wait, 0) + 0.05)
    [again] = await queue.claim("w", 1)
    assert (again.id, again.attempt) == (job.id, 2)


async def test_fail_attempt_without_retry_fails_for_good(container: Container) -> None:
    queue = container.queue
    assert container.hub is not None
    job = await new_job(container)
    [claimed] = await queue.claim("w", 1)

    with container.hub.subscribe(job.id) as ended:
        status = await queue.fail_attempt(job.id, claimed.attempt, "upstream_rejected", "no", False, None)
        await asyncio.wait_for(ended.wait(), 5)

    assert status == "failed"
    row = await job_row(container, job.id)
    assert (row.status, row.error_code, row.error_message) == ("failed", "upstream_rejected", "no")
    assert row.finished_at is not None and row.lease_owner is None
    assert [(e["attempt"], e["retryable"]) for e in row.attempt_errors] == [(1, False)]
    assert await queue.claim("w", 1) == []


# ---- the runner with the sleepy provider ----------------------------------------------------------------


async def test_runner_retries_a_retryable_failure_and_succeeds(container: Container) -> None:
    job = await new_job(container, settings_json={"fail_first": 1})

    status = await run_job_by_id(container.queue, container.runner, job.id, "runner-test")

    assert status == "succeeded"
    assert SleepyProvider.calls == [(str(job.id), 1), (str(job.id), 2)]
    row = await job_row(container, job.id)
    assert (row.status, row.attempt) == ("succeeded", 2)
    assert [(e["attempt"], e["code"], e["retryable"]) for e in row.attempt_errors] == [
        (1, "upstream_unavailable", True)
    ]
    data, ref = await container.media.read(row.result_media_id)
    assert data == PHOTO and ref.kind == "result"


async def test_runner_does_not_retry_a_permanent_failure(container: Container) -> None:
    job = await new_job(container, settings_json={"fail_always": True})
    [claimed] = await container.queue.claim("w", 1)

    outcome = await container.runner.run(claimed)

    assert (outcome.status, outcome.retry_in) == ("failed", None)
    assert SleepyProvider.calls == [(str(job.id), 1)]
    row = await job_row(container, job.id)
    assert (row.status, row.attempt, row.error_code, row.result_media_id) == ("failed", 1, "upstream_rejected", None)
    assert [(e["attempt"], e["retryable"]) for e in row.attempt_errors] == [(1, False)]
    assert await container.queue.claim("w", 1) == []
    assert await scalar(container, "SELECT count(*) FROM media_objects WHERE kind = 'result'") == 0


def _later() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


@pytest.mark.parametrize("settings_overrides", [{"max_parallel_jobs": 2}], indirect=True)
async def test_concurrent_claimers_fill_every_free_place(container: Container) -> None:
    """Claimers that arrive together wait for each other's capacity decision instead of giving up: with two
    places free and eight single-job claimers, both places are taken in the same round, every round."""
    queue = container.queue
    await asyncio.gather(*(new_job(container) for _ in range(40)))
    for _ in range(10):
        batches = await asyncio.gather(*(queue.claim(f"owner-{i}", 1) for i in range(8)))
        assert sum(len(b) for b in batches) == 2
        assert await running_count(container) == 2
        async with container.engine.begin() as conn:  # free both places for the next round
            await conn.execute(text("UPDATE jobs SET status = 'failed' WHERE status = 'running'"))


@pytest.mark.parametrize("settings_overrides", [{"max_parallel_jobs": 2}], indirect=True)
async def test_concurrent_lambda_claims_by_id_both_get_their_job(container: Container) -> None:
    first, second = await new_job(container), await new_job(container)
    for _ in range(10):
        got = await asyncio.gather(
            container.queue.claim("lambda-a", 1, only_id=first.id),
            container.queue.claim("lambda-b", 1, only_id=second.id),
        )
        assert [[j.id for j in g] for g in got] == [[first.id], [second.id]]
        async with container.engine.begin() as conn:
            await conn.execute(text("UPDATE jobs SET status = 'queued', run_after = now() WHERE status = 'running'"))


@pytest.mark.parametrize("settings_overrides", [{"max_parallel_jobs": 2}], indirect=True)
async def test_a_full_provider_does_not_hide_another_providers_work(container: Container) -> None:
    queue = container.queue
    await asyncio.gather(*(new_job(container) for _ in range(20)))  # sleepy: 20 queued, limit 2
    assert len(await queue.claim("w", 2)) == 2  # sleepy is now full
    source = await container.media.write_bytes("source", PHOTO, "image/jpeg")
    now = datetime.now(UTC)
    local_job, _ = await queue.enqueue(
        NewJob(
            id=uuid.uuid4(),
            slot_id="slot-002",
            provider_id="local",
            operation_id="resize",
            settings_json={"width": 32},
            source_media_id=source.id,
            source_sha256=_unique_sha(),
            max_attempts=3,
            deadline_at=now + timedelta(seconds=120),
            request_meta={},
        ),
        source,
        now + timedelta(minutes=10),
    )
    assert local_job is not None
    [got] = await queue.claim("w", 1)
    assert got.id == local_job.id
