"""The database goes away while provider calls are in flight, for longer than LEASE - HEARTBEAT (the leases run
out meanwhile): no provider is called a second time. The worker's heartbeats fail without cancelling the calls,
the first heartbeat that gets through re-asserts the lease, the worker never claims its own running job, and a
result that comes back during the outage is kept until the database is back.

The outage is made for real on the test's own database: new connections refused (`ALLOW_CONNECTIONS false`)
and every open one terminated, the worker's pool, its LISTEN connection and its claims included."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from boothbridge.bootstrap import Container
from boothbridge.db.engine import libpq_url
from boothbridge.jobs.worker_loop import WorkerLoop
from tests.fakes.sleepy import SleepyProvider, sleepy_catalog
from tests.integration.test_queue import new_job

pytestmark = pytest.mark.slow

JOBS = 6


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    lease, heartbeat = getattr(request, "param", (2.0, 0.5))
    return {
        "run_worker": False,
        "lease_sec": lease,
        "heartbeat_sec": heartbeat,
        "fallback_poll_sec": 0.3,
        "db_pool_size": 4,
        "providers_config": sleepy_catalog(tmp_path / "p.json", max_parallel_jobs=JOBS + 2),
    }


class Outage:
    """Makes the test's database unreachable and brings it back (through the server's maintenance database)."""

    def __init__(self, admin_url: str, database_url: str) -> None:
        self.admin_url = admin_url
        self.name = psycopg.conninfo.conninfo_to_dict(libpq_url(database_url))["dbname"]

    def begin(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (self.name,),
            )

    def end(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


@pytest.fixture
async def outage(pg_admin_url: str, database_url: str) -> AsyncIterator[Outage]:
    cut = Outage(pg_admin_url, database_url)
    try:
        yield cut
    finally:
        cut.end()


def job_rows(database_url: str, ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """Read on a fresh connection (the container's pools may still hold connections the outage cut)."""
    with psycopg.connect(libpq_url(database_url), autocommit=True, row_factory=dict_row) as conn:
        rows = conn.execute(
            "SELECT id, status, attempt, max_attempts, lease_expiries, lease_owner, lease_expires_at,"
            " lease_expires_at > now() AS lease_valid, attempt_errors FROM jobs WHERE id = ANY(%s)",
            (ids,),
        ).fetchall()
    return {row["id"]: row for row in rows}


async def wait_until(what: str, check: Any, timeout: float) -> None:
    """Poll `check()` (a generous bound, not a timing assertion: it only stops a broken test)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("settings_overrides", "delay_sec", "outage_sec"),
    [
        # The calls end during the outage: their results wait for the database (completion retried).
        pytest.param((2.0, 0.5), 3.0, 5.0, id="short-lease-results-during-outage"),
        # The outage ends before the calls do: the heartbeats re-assert the lapsed leases.
        pytest.param((2.0, 0.5), 9.0, 5.0, id="short-lease-calls-outlast-outage"),
        # The default lease and heartbeat (30 s, 10 s) with a 33 s outage behaves the same (measured: 1 call per job,
        # done 7.1 s after the database returned), but takes 40 s: the short lease keeps the suite within its time.
    ],
    indirect=["settings_overrides"],
)
async def test_an_outage_of_the_database_never_calls_a_provider_twice(
    container: Container, outage: Outage, delay_sec: float, outage_sec: float
) -> None:
    jobs = [await new_job(container, settings_json={"delay_sec": delay_sec}) for _ in range(JOBS)]
    ids = [job.id for job in jobs]
    worker = WorkerLoop(container.queue, container.runner, container.hub, concurrency=JOBS + 2, poll_sec=0.3)
    await worker.start()
    try:
        await wait_until("every job's provider call started", lambda: len(SleepyProvider.calls) == JOBS, 20)
        before = job_rows(container.database_url, ids)
        assert {row["status"] for row in before.values()} == {"running"}
        owner = {row["lease_owner"] for row in before.values()}
        assert owner == {worker.owner}

        outage.begin()
        await asyncio.sleep(outage_sec)  # the leases run out while nobody can reach the database
        outage.end()
        reopened = time.monotonic()

        # Right after the outage (before the first call ends, in the second case) the leases are re-asserted by
        # the worker that holds them: the same attempt, the same owner, valid again.
        if delay_sec > outage_sec + 2:

            def reasserted() -> bool:
                rows = job_rows(container.database_url, ids).values()
                return all(row["lease_valid"] and row["attempt"] == 1 for row in rows)

            await wait_until("the leases re-asserted", reasserted, 30)
            rows = job_rows(container.database_url, ids)
            assert {row["lease_owner"] for row in rows.values()} == {worker.owner}
            assert {row["status"] for row in rows.values()} == {"running"}

        def all_done() -> bool:
            return all(row["status"] == "succeeded" for row in job_rows(container.database_url, ids).values())

        await wait_until("every job succeeded", all_done, 120)
        print(f"all {JOBS} jobs done {time.monotonic() - reopened:.1f} s after the database came back")
    finally:
        await worker.stop()

    calls = Counter(SleepyProvider.calls)
    assert calls == Counter({(str(job_id), 1): 1 for job_id in ids}), "a provider was called twice"
    for row in job_rows(container.database_url, ids).values():
        assert (row["status"], row["attempt"], row["lease_expiries"], row["max_attempts"]) == ("succeeded", 1, 0, 3)
        assert row["attempt_errors"] == []
