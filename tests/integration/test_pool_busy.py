"""A busy hot pool is overload, not an outage (real PostgreSQL; a pool of one connection held by another task).

A statement waits for the connection as long as its caller's deadline allows and succeeds when the connection
comes back in time; past the deadline it gets `DatabaseBusy` (503 `busy`); either way the database is never
counted as down (`unreachable_for` stays None, nothing retried). A pool that cannot connect is still the database
unreachable, found at the outage bound, not at the deadline. Through ingest: the booth gets 503 `busy` with
Retry-After, and the request's processing-log row is written when the connection comes back within its budget.

Things are ordered by events and by the pool's counters, never by sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest

from boothbridge.bootstrap import Container
from boothbridge.db import checkout, raw
from boothbridge.db.raw import DatabaseBusy, DatabaseUnavailable, RawDb, db_deadline, retry_safe
from boothbridge.settings import Settings
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo

_PING = retry_safe("SELECT 1 AS ok")
_NOT_RETRIED = "SELECT 2 AS ok"  # not registered with retry_safe: one try, as any other statement
_FAR = 120.0  # a deadline that is never reached in these tests (seconds from now)


class Holder:
    """Another task holding the pool's only connection until `release()`."""

    def __init__(self, db: RawDb) -> None:
        self.db = db
        self.held = asyncio.Event()
        self._release = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Holder:
        self.task = asyncio.create_task(self._hold())
        await self.held.wait()
        return self

    async def _hold(self) -> None:
        async with self.db.connection():
            self.held.set()
            await self._release.wait()

    def release(self) -> None:
        self._release.set()

    async def __aexit__(self, *_: object) -> None:
        self.release()
        assert self.task is not None
        await self.task


async def until(condition: Any, tries: int = 3000) -> None:
    """Wait until `condition()` holds (bounded by tries, not by a clock: the machine may be slow)."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


@pytest.fixture
def short_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    # The outage bound (a statement's last try) and the busy pool's re-look come at once, so a wait that would
    # have given up at the old fixed bound is seen to go on.
    monkeypatch.setattr(raw, "MIN_CHECKOUT_SEC", 0.02)
    monkeypatch.setattr(checkout, "RECHECK_SEC", 0.02)


@pytest.fixture
async def one_connection(database_url: str, short_bounds: None) -> AsyncIterator[RawDb]:
    # timeout_sec: the pool's own wait, a statement's outage bound when it is not retried.
    db = RawDb(database_url, 1, retry_window_sec=0.02, timeout_sec=0.05)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


@pytest.mark.parametrize("query", [_PING, _NOT_RETRIED], ids=["retry-safe", "not-retried"])
async def test_a_statement_waits_for_a_busy_pool_and_succeeds_when_the_connection_comes_back(
    one_connection: RawDb, query: Any
) -> None:
    db = one_connection
    async with Holder(db) as holder:
        with db_deadline(time.monotonic() + _FAR):
            statement = asyncio.create_task(db.one(query))
        # Past its outage bound the waiter has looked at the pool (busy: its connection held) and waits on.
        await until(lambda: db.waiter.busy_looks >= 2)
        assert not statement.done()
        holder.release()
        row = await statement
    assert row is not None and row["ok"] in (1, 2)
    assert db.unreachable_for is None
    assert db.retries == 0 and db.waiter.busy_timeouts == 0


@pytest.mark.parametrize("query", [_PING, _NOT_RETRIED], ids=["retry-safe", "not-retried"])
async def test_a_pool_busy_past_the_deadline_answers_busy_and_the_database_is_not_down(
    one_connection: RawDb, query: Any
) -> None:
    db = one_connection
    async with Holder(db):
        with db_deadline(time.monotonic() + 0.3), pytest.raises(DatabaseBusy) as raised:
            await db.one(query)
        assert db.unreachable_for is None
    assert raised.value.status == 503 and raised.value.code == "busy"
    assert "Retry-After" in raised.value.headers
    assert db.retries == 0 and db.waiter.busy_timeouts == 1
    # Nothing remembers an outage: the next statement runs at once, with its full tries.
    assert await db.one(_PING) == {"ok": 1}
    assert db.unreachable_for is None


async def test_a_pool_that_cannot_connect_is_the_database_unreachable_at_the_outage_bound(
    short_bounds: None, unused_port: int
) -> None:
    db = RawDb(f"postgresql://nobody@127.0.0.1:{unused_port}/nothing", 1, retry_window_sec=0.02)
    await db.pool.open(wait=False)
    try:
        # The deadline is far: a wait that ran to it would be stopped by the guard and fail the test.
        async with asyncio.timeout(_FAR / 2):
            with db_deadline(time.monotonic() + _FAR), pytest.raises(DatabaseUnavailable):
                await db.one(_PING)
        assert db.unreachable_for is not None
        assert db.waiter.busy_timeouts == 0
    finally:
        await db.close()


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- through ingest ----------------------------------------------------------------------------------------


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # The hot pool has one connection; the booth's answer is due 1.5 s after its request starts.
    return {"db_pool_size": 1, "t_sync_response": 1.5, "run_worker": False}


async def test_a_booth_meeting_a_busy_pool_gets_503_busy_and_its_log_row_is_written(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(client, token, "slot-001", "sleepy", "echo", {})
    assert r.status_code == 200, r.text
    pw = str(credentials(settings.credentials_path)["ingest_password"])
    pool = container.pool
    async with Holder(pool) as holder:
        booth = asyncio.create_task(post_photo(client, "slot-001", jpeg(), pw))
        # The slot read waited until the booth's answer was due, then the pool was still busy...
        await until(lambda: pool.waiter.busy_timeouts >= 1)
        # ...and the processing-log row, with its own budget, now waits for the connection: it comes back.
        await until(lambda: pool.pool.get_stats().get("requests_waiting", 0) >= 1)
        holder.release()
        answer = await booth
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "busy"
    assert int(answer.headers["Retry-After"]) > 0
    assert pool.unreachable_for is None
    assert settings.database_url is not None
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        rows = await (await conn.execute("SELECT http_status, error_code FROM processing_log")).fetchall()
    assert rows == [(503, "busy")]


async def test_a_burst_on_a_saturated_event_loop_is_busy_never_the_database_down(
    database_url: str, short_bounds: None
) -> None:
    """The field fault (bench.big_waiters: 200 booths posting 8.6 MB photos at once were told 503
    `database_unavailable` although the database answered): under a burst each connection given back goes to
    the next caller in the pool's queue, and is counted held again only once that caller runs; on an event loop
    kept busy, a look can find every connection in transit (held by nobody, none idle). The pool handing
    connections out is busy, not down: every statement of the burst succeeds, nothing is counted as an outage."""
    db = RawDb(database_url, 1, retry_window_sec=0.02, timeout_sec=0.05)
    await db.open()
    original_putconn = db.pool.putconn

    async def slow_return(conn: Any) -> None:
        # A connection given back takes a moment to reach the next caller (a busy loop, a reset round trip).
        await asyncio.sleep(0.005)
        await original_putconn(conn)

    db.pool.putconn = slow_return  # type: ignore[method-assign]

    async def statement(n: int) -> Any:
        with db_deadline(time.monotonic() + _FAR):
            async with db.connection() as conn:
                time.sleep(0.002)  # the event loop kept busy while the connection is held
                return await (await db.run(conn, "SELECT %(n)s::int AS n", {"n": n})).fetchone()

    try:
        rows = await asyncio.gather(*(statement(n) for n in range(40)), return_exceptions=True)
        failures = [row for row in rows if isinstance(row, BaseException)]
        assert failures == []
        assert sorted(row["n"] for row in rows) == list(range(40))  # type: ignore[index]
        assert db.unreachable_for is None
        assert db.waiter.busy_looks > 0  # waits went past their outage bound and were seen to be busy
    finally:
        await db.close()
