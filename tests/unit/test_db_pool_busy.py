"""A pool that hands out no connection in time: busy (overload) or the database unreachable, decided from the
exception and what the pool looked like while the caller waited (`db.trouble`); and how each is answered."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from boothbridge.db.raw import _unreachable
from boothbridge.db.trouble import (
    DatabaseBusy,
    DatabaseUnavailable,
    PoolState,
    checkout_failure,
    is_busy,
    is_connection_trouble,
    pool_kind,
    trouble_reason,
)


def _timeout() -> PoolTimeout:
    return PoolTimeout("couldn't get a connection after 5.00 sec")


@pytest.mark.parametrize(
    ("state", "kind"),
    [
        (PoolState(held=1, connect_errors=0), "busy"),  # its one connection held by another task
        (PoolState(held=20, connect_errors=0), "busy"),  # every connection of a full pool checked out
        (PoolState(held=0, connect_errors=0), "unreachable"),  # nothing open to hand out: the ones it had were lost
        (PoolState(held=0, connect_errors=3), "unreachable"),  # the database refuses connections
        (PoolState(held=5, connect_errors=1), "unreachable"),  # held ones, but new ones fail to open
        # A burst: every connection in transit from the caller that gave it back to the next in the queue (held
        # by nobody at the instant of the look), the pool handing them out all along.
        (PoolState(held=0, connect_errors=0, handing_out=True), "busy"),
        (PoolState(held=0, connect_errors=2, handing_out=True), "unreachable"),  # handing out, but new ones fail
    ],
    ids=[
        "one-held",
        "all-held",
        "none-held",
        "connect-errors",
        "held-but-connect-errors",
        "in-transit",
        "in-transit-but-connect-errors",
    ],
)
def test_pool_kind(state: PoolState, kind: str) -> None:
    assert pool_kind(state) == kind
    assert checkout_failure(_timeout(), state) == kind


def test_a_pool_timeout_raised_from_counts_and_other_errors_are_not_checkout_failures() -> None:
    busy = PoolState(held=2, connect_errors=0)
    wrapped = RuntimeError("while checking out")
    wrapped.__cause__ = _timeout()
    assert checkout_failure(wrapped, busy) == "busy"
    assert checkout_failure(psycopg.OperationalError("connection refused"), busy) is None
    assert checkout_failure(psycopg.errors.UniqueViolation("duplicate key"), busy) is None
    assert checkout_failure(TimeoutError(), busy) is None


def test_busy_is_transient_trouble_but_not_the_database_down() -> None:
    busy = DatabaseBusy()
    raised_from = DatabaseBusy()
    raised_from.__cause__ = _timeout()
    for exc in (busy, raised_from):
        assert is_busy(exc)
        assert is_connection_trouble(exc)  # callers that ride out trouble ride this out too
        assert not _unreachable(exc)  # never retried as an outage, never sets `unreachable_for`
        assert trouble_reason(exc) == "database_pool_busy"
    # A pool that could not connect stays the database unreachable, as before.
    assert _unreachable(_timeout()) and not is_busy(_timeout())
    assert trouble_reason(_timeout()) == "no_connection_in_time"
    assert _unreachable(DatabaseUnavailable("connection_refused"))


def test_busy_is_answered_503_busy_with_retry_after() -> None:
    err = DatabaseBusy()
    assert err.status == 503
    assert err.body()["error"]["code"] == "busy"  # the code ingest already answers overload with
    assert err.body()["error"]["details"] == {"reason": "database_pool_busy"}
    assert int(err.headers["Retry-After"]) > 0
    assert not isinstance(err, DatabaseUnavailable)


async def test_every_app_answers_a_busy_pool_503_busy(caplog: pytest.LogCaptureFixture) -> None:
    import httpx
    from fastapi import FastAPI

    from boothbridge.http.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise DatabaseBusy() from _timeout()

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/boom")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "busy"
    assert "Retry-After" in r.headers
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


class _HungPool:
    """psycopg_pool's face as the waiter sees it, for a database gone from the network: no idle connection, and
    connection attempts that hang (no error to count) until the caller's wait runs out."""

    def get_stats(self) -> dict[str, int]:
        return {"pool_available": 0, "connections_errors": 0}

    async def getconn(self, timeout: float) -> None:
        await asyncio.sleep(timeout)
        raise PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec")


@pytest.mark.parametrize("watched", [False, True], ids=["deadline-before-outage-bound", "watched-past-outage-bound"])
async def test_a_pool_that_handed_out_a_connection_then_stopped_is_unreachable(
    watched: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another caller got a connection early in this caller's wait, then the database went away: at the end of
    the wait (or the next look) the pool is handing nothing out and holds nothing, so it is unreachable
    (`PoolTimeout`, 503 `database_unavailable`), not busy. Found in review: the hand-outs were counted since the
    wait began."""
    from boothbridge.db import checkout

    monkeypatch.setattr(checkout, "RECHECK_SEC", 0.05)
    waiter = checkout.PoolWaiter(_HungPool())  # type: ignore[arg-type]

    async def another_caller() -> None:
        await asyncio.sleep(0.02)
        waiter._took()  # it got the last connection the pool could give, and lost it
        waiter.returned()

    asyncio.get_running_loop().create_task(another_caller())
    now = time.monotonic()
    outage_until, busy_until = (now + 0.1, now + 5.0) if watched else (now + 0.4, now + 0.4)
    with pytest.raises(PoolTimeout):
        await waiter.getconn(outage_until, busy_until)
    assert waiter.busy_timeouts == 0
