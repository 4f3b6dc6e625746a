"""What kind of database failure an exception is (no I/O): the statement's own fault, the database being
unreachable (`DatabaseUnavailable`), or the hot pool busy (`DatabaseBusy`).

A pool that hands out no connection in time says nothing by itself: under a burst every connection can be
checked out by requests whose tasks wait for a saturated event loop, and that is overload, not an outage.
`pool_kind` tells the two apart from what the pool looked like while the caller waited (`PoolState`): connections
held by their users and none failing to open is **busy**; nothing held, or connections failing to open, is the
database **unreachable**. `db.checkout` waits for a busy pool as long as the caller's deadline allows and answers
503 `busy` after it, and never counts a busy pool as the database being down.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import psycopg
from psycopg_pool import PoolTimeout

from boothbridge.errors import AppError

# What a client told 503 `database_unavailable` or `busy` is asked to wait before trying again.
RETRY_AFTER_SEC = 5
BUSY_CODE = "busy"  # the code ingest answers overload with (a photo that could not be queued says the same)

PoolKind = Literal["busy", "unreachable"]


class DatabaseUnavailable(AppError):
    """The database could not be reached (or kept dropping the connection) within the time there was."""

    def __init__(self, reason: str = "unreachable") -> None:
        super().__init__(
            503,
            "database_unavailable",
            "the database is not reachable at the moment; try again shortly",
            {"reason": reason},
            headers={"Retry-After": str(RETRY_AFTER_SEC)},
        )
        self.reason = reason


class DatabaseBusy(AppError):
    """No pooled connection came free before the caller's deadline while the pool's connections were all in use
    (overload: the database answers, this process has more work than connections). 503 `busy` with Retry-After;
    the statement did not run."""

    reason = "database_pool_busy"

    def __init__(self) -> None:
        super().__init__(
            503,
            BUSY_CODE,
            "the server is busy; try again shortly",
            {"reason": self.reason},
            headers={"Retry-After": str(RETRY_AFTER_SEC)},
        )


@dataclass(frozen=True)
class PoolState:
    """The pool as seen by a caller that got no connection: `held`, connections checked out by their users now;
    `connect_errors`, failed attempts to open a connection since the caller began to wait; `handing_out`, the
    pool gave another caller a connection a moment ago (`db.checkout.RECHECK_SEC`)."""

    held: int
    connect_errors: int
    handing_out: bool = False


def pool_kind(state: PoolState) -> PoolKind:
    """Why a pool has no connection for a waiting caller: "busy" when none failed to open while the caller waited
    and the pool is in use: connections held by their users, or handed out a moment ago (under a burst a
    connection given back goes straight to the next caller in the queue, and is counted held only once that
    caller runs again: on a saturated event loop every connection can be in transit at the instant of a look);
    "unreachable" when a connection failed to open, or it holds none out and is handing none out (nothing is
    open to hand out: the ones it had were lost, or new ones do not come)."""
    if state.connect_errors > 0 or (state.held <= 0 and not state.handing_out):
        return "unreachable"
    return "busy"


def checkout_failure(exc: BaseException, state: PoolState) -> PoolKind | None:
    """The kind of a failed checkout: `pool_kind(state)` when `exc` is (or was raised from) psycopg_pool's
    `PoolTimeout`, None for any other exception (classified by `is_connection_trouble` as before)."""
    if any(isinstance(cause, PoolTimeout) for cause in _causes(exc)):
        return pool_kind(state)
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        # SQLAlchemy's DBAPIError wraps the driver's error; otherwise only an explicit `raise … from` counts (an
        # unrelated error raised while handling a database error is not a database error).
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__


def is_busy(exc: BaseException) -> bool:
    """The hot pool was busy until the caller's deadline (`DatabaseBusy`, also when raised from)."""
    return any(isinstance(cause, DatabaseBusy) for cause in _causes(exc))


def is_connection_trouble(exc: BaseException) -> bool:
    """A failure of the connection or the server rather than of the statement, which a caller may ride out or
    answer with a 503: lost or refused connections (SQLSTATE class 08, or none: the client side), a server
    shutting down or starting up (57P01-57P03), too many connections (53300), no pooled connection in time (an
    unreachable database, or a busy pool: `is_busy` tells; only the former counts as the database down). A
    cancelled statement (57014), a constraint or a syntax error is not one: running it again would fail again."""
    for cause in _causes(exc):
        if isinstance(cause, DatabaseUnavailable | DatabaseBusy | PoolTimeout):
            return True
        if isinstance(cause, psycopg.OperationalError):
            state = cause.sqlstate
            return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03", "53300")
        if isinstance(cause, psycopg.Error):
            return False
        if type(cause).__module__.startswith("sqlalchemy") and type(cause).__name__ == "TimeoutError":
            return True  # SQLAlchemy's pool had no connection in time
    return False


def trouble_reason(exc: BaseException) -> str:
    """A short, secret-free reason for a connection failure (health and error details): never the server's
    message, which names hosts, sockets and users."""
    for cause in _causes(exc):
        if isinstance(cause, DatabaseUnavailable):
            return cause.reason
        if isinstance(cause, DatabaseBusy):
            return cause.reason
        if isinstance(cause, PoolTimeout) or type(cause).__name__ == "TimeoutError":
            return "no_connection_in_time"
        if isinstance(cause, psycopg.OperationalError):
            return _operational_reason(cause)
    return "unreachable"


def _operational_reason(cause: psycopg.OperationalError) -> str:
    state = cause.sqlstate
    if state in ("57P01", "57P02"):
        return "server_shutting_down"
    if state == "57P03":
        return "server_starting_up"
    if state == "53300":
        return "too_many_connections"
    if state == "28P01" or state == "28000":
        return "authentication_failed"
    text = str(cause).lower()
    if "shutting down" in text:
        return "server_shutting_down"
    if "starting up" in text or "recovery" in text:
        return "server_starting_up"
    if "refused" in text or "no such file" in text:
        return "connection_refused"  # nothing listens: the server is stopped (or not there)
    if "timeout" in text or "timed out" in text:
        return "connection_timeout"
    if "closed" in text or "terminat" in text:
        return "connection_lost"
    return "unreachable"
