"""Plain psycopg for the hot path (ingest, queue, worker): no SQLAlchemy layer between the code and the driver.

Why: on the ingest path SQLAlchemy's async Connection, its pool checkout and its result objects cost about
0.4 ms of CPU per statement (measured: ~0.5 ms for a one-row SELECT through `AsyncEngine.connect()` against
~0.12 ms through this pool), and an ingest runs about ten statements. Everything else (operator API, stats,
cleanup, migrations) stays on the SQLAlchemy engine.

The statements stay visible: each caller passes its SQL text (psycopg `%(name)s` placeholders) with a comment
on why it is shaped so. Connections are autocommit, so a single statement is its own transaction with no
BEGIN/COMMIT round trips; `transaction()` is for the few multi-statement units (the claim). Every statement is
prepared on the server the first time a connection runs it (`prepare_threshold=0`), so each is parsed and
planned once per connection.

**When the database blinks** (a restart, a failover, a dropped connection):
- a pooled connection the server has closed is found at checkout, nearly for free: an idle connection whose
  socket has something to read has been sent its FATAL or its EOF, so only then is it pinged (psycopg_pool's
  `check_connection`); a dead one goes back to the pool, which replaces it, the next one is taken at once (not
  after psycopg_pool's `check` hook's backoff of a second and more per dead connection), and the pool's other
  idle connections are checked (`pool.check()`);
- a statement registered with `retry_safe()` (reads, and writes that are idempotent or fenced, so that running
  them twice changes nothing more than running them once) is retried on a fresh connection after a
  connection-level failure, with exponential backoff and jitter (tenacity), for at most `retry_window_sec` and
  never past the caller's deadline (`db_deadline()`); then it raises `DatabaseUnavailable` (503 with
  `Retry-After`). While the database has been unreachable for longer than the window, a statement gets one try
  and fails fast. Any other statement fails as before: only its caller knows whether running it again is safe;
- the pool replaces lost connections by itself (its reconnect backoff is bounded by `reconnect_timeout`, so a
  database back after a long outage is found again within seconds, without a restart).

**When the pool is busy** (every connection checked out, as under a burst of booths on a saturated event loop):
that is overload, not an outage (`db.trouble.pool_kind`: connections held by their users and none failing to
open). A checkout keeps its place in the pool's queue until the caller's deadline (`db_deadline()`; without one,
the pool's timeout), then raises `DatabaseBusy` (503 `busy` with `Retry-After`; the statement did not run). It
is not retried, sets no `unreachable_for` and shortens nobody's tries. A pool that cannot connect is still found
after the outage bound above (`db.checkout`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import select
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, LiteralString, TypeVar

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool
from tenacity import AsyncRetrying, retry_if_exception, stop_before_delay, wait_exponential_jitter

from boothbridge.db.checkout import PoolWaiter
from boothbridge.db.engine import libpq_url
from boothbridge.db.trouble import (
    RETRY_AFTER_SEC,
    DatabaseBusy,
    DatabaseUnavailable,
    is_busy,
    is_connection_trouble,
    trouble_reason,
)

# Callers import the failure kinds from here, where the statements run.
__all__ = [
    "RETRY_AFTER_SEC",
    "DatabaseBusy",
    "DatabaseUnavailable",
    "RawDb",
    "db_deadline",
    "is_connection_trouble",
    "retry_safe",
    "trouble_reason",
]

log = logging.getLogger(__name__)

Params = Mapping[str, Any]
Conn = psycopg.AsyncConnection[DictRow]
T = TypeVar("T")

# A statement's single try (or the last one) may still wait this long for a pooled connection.
MIN_CHECKOUT_SEC = 0.5

_RETRY_SAFE: set[str] = set()
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("boothbridge_db_deadline", default=None)


def retry_safe(query: LiteralString) -> LiteralString:
    """Register `query` as safe to run again after a connection-level failure (it may have run once already,
    its answer lost): a read, or a write that is idempotent or fenced. Returns it unchanged, so a statement is
    declared where it is written: `READ = retry_safe("SELECT …")`."""
    _RETRY_SAFE.add(query)
    return query


@contextlib.contextmanager
def db_deadline(at: float) -> Iterator[None]:
    """Retried statements run in this block give up at `at` (time.monotonic()) at the latest: a request's own
    deadline. At least one try is always made."""
    token = _deadline.set(at)
    try:
        yield
    finally:
        _deadline.reset(token)


def _unreachable(exc: BaseException) -> bool:
    """Connection trouble that counts as the database down (retried, and setting `unreachable_for`); a busy pool
    (`DatabaseBusy`) is not: it was waited for until the caller's deadline already."""
    return is_connection_trouble(exc) and not is_busy(exc)


def _readable(fd: int) -> bool:
    """Whether the socket has something to read (or has hung up), without waiting."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


async def _configure(conn: Conn) -> None:
    """Each new hot-path connection plans its prepared statements once (a generic plan) instead of re-planning
    them per run: this pool runs a fixed set of statements whose filters are equalities on indexed keys and
    arrays, so the plan does not depend on the values, and re-planning the claim cost more (about 1 ms) than
    running it. No statement on this pool makes its filter optional with `%(x)s IS NULL OR …` (the claim of one
    job has statements of its own for that reason), where a generic plan could not use an index."""
    await conn.execute("SET plan_cache_mode = force_generic_plan")


class RawDb:
    """A psycopg connection pool with one-call helpers. Rows are dicts. Counts its statements and checkouts
    (read by the benchmark; cheap enough to keep), the retries of retry-safe statements, and (`waiter`) the
    waits for a busy pool."""

    def __init__(
        self,
        url: str,
        max_size: int,
        *,
        recycle_sec: float = 300.0,
        timeout_sec: float = 30.0,
        retry_window_sec: float = 5.0,
        reconnect_timeout_sec: float = 5.0,
    ) -> None:
        self.pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            libpq_url(url),
            min_size=1,
            max_size=max(1, max_size),
            open=False,
            # Like the SQLAlchemy engine: connections younger than typical idle timeouts (proxies, firewalls).
            max_lifetime=recycle_sec,
            timeout=timeout_sec,
            # Prepared on a connection's first use of a statement, not its fifth: the pool hands connections out in
            # turn (FIFO) and recycles them, so with psycopg's default most executions would still be planned anew.
            kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0},
            name="boothbridge-hot",
            # A lost connection is replaced with backoff (1 s, 2 s, …) for at most this long, then given up and
            # started again by the next request that needs one: after a long outage the database is found
            # again within a couple of seconds, not after a backoff grown to minutes.
            reconnect_timeout=reconnect_timeout_sec,
            configure=_configure,
        )
        self.retry_window_sec = retry_window_sec
        self.statements = 0
        self.checkouts = 0
        self.retries = 0
        self.waiter = PoolWaiter(self.pool)  # its connections handed out; a busy pool told from one that is down
        self._down_since: float | None = None
        self._last_trouble = "unreachable"
        self._scrub: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.pool.open(wait=True)

    async def close(self) -> None:
        if self._scrub is not None:
            self._scrub.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scrub
        await self.pool.close()

    @property
    def unreachable_for(self) -> float | None:
        """Seconds since retried statements began failing for connection reasons (None: they succeed)."""
        return None if self._down_since is None else time.monotonic() - self._down_since

    @property
    def last_trouble(self) -> str:
        return self._last_trouble

    async def probe(self, timeout: float = 2.0) -> str | None:
        """Why the database cannot be reached, from a connection attempt of its own (the pool, reconnecting in
        the background, only says it has no connection): None if it connects, else a short reason code."""
        try:
            conninfo = str(self.pool.conninfo)
            conn = await psycopg.AsyncConnection.connect(conninfo, connect_timeout=max(1, round(timeout)))
        except Exception as exc:
            return trouble_reason(exc) if is_connection_trouble(exc) else "connect_failed"
        await conn.close()
        return None

    def _bounds(self, timeout: float | None) -> tuple[float, float]:
        """(until when a pool that cannot connect is waited for, until when a busy one is), time.monotonic().
        `timeout` bounds the former (None: the pool's, and no later than the caller's `db_deadline`); a busy
        pool is waited for up to the caller's deadline (without one: the pool's timeout), never less."""
        now = time.monotonic()
        deadline = _deadline.get()
        if timeout is None:
            timeout = self.pool.timeout
            if deadline is not None:
                timeout = max(MIN_CHECKOUT_SEC, min(timeout, deadline - now))
        outage_until = now + timeout
        busy_until = deadline if deadline is not None else now + self.pool.timeout
        return outage_until, max(outage_until, busy_until)

    async def _checkout(self, timeout: float | None) -> Conn:
        """A pooled connection that the server has not closed, as far as can be told for free: an idle
        connection has nothing to read unless the server has closed it (its FATAL message or its EOF is
        waiting), so only then is it pinged. A dead one is handed back (the pool replaces it) and the next one
        taken at once; the pool's other idle connections are checked meanwhile. Raises `DatabaseBusy` when the
        pool stayed busy (see `db.checkout`), `PoolTimeout` when it could not connect."""
        outage_until, busy_until = self._bounds(timeout)
        while True:
            conn = await self.waiter.getconn(outage_until, busy_until)
            if not conn.closed and not conn.broken and not _readable(conn.pgconn.socket):
                break
            with contextlib.suppress(Exception):
                if not conn.closed:
                    await AsyncConnectionPool.check_connection(conn)
            if not conn.closed and not conn.broken:
                break  # something to read, but alive (a notice): keep it
            self.waiter.returned()
            await self.pool.putconn(conn)
            self._check_idle_soon()
        return conn

    def _check_idle_soon(self) -> None:
        if self._scrub is None or self._scrub.done():
            self._scrub = asyncio.create_task(self._check_idle(), name="boothbridge-hot-check")

    async def _check_idle(self) -> None:
        log.warning("a database connection was lost; checking the pool's idle connections")
        with contextlib.suppress(Exception):
            await self.pool.check()

    @contextlib.asynccontextmanager
    async def connection(self, timeout: float | None = None) -> AsyncIterator[Conn]:
        """A pooled autocommit connection: waiting at most `timeout` for one while the pool cannot connect
        (default the pool's, within the caller's deadline), and for a busy pool up to that deadline (`_bounds`);
        raises `PoolTimeout` or `DatabaseBusy`. After a lost connection (server restart, network) the pool's
        other idle connections are checked at once, so one failed statement does not become one per connection."""
        self.checkouts += 1
        broken = False
        try:
            conn = await self._checkout(timeout)
            try:
                yield conn
            finally:
                broken = conn.broken
                self.waiter.returned()
                await self.pool.putconn(conn)
        finally:
            if broken:  # the pool has already dropped this one
                log.warning("a database connection was lost; checking the pool's idle connections")
                with contextlib.suppress(Exception):
                    await self.pool.check()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """One connection in one transaction (BEGIN … COMMIT, ROLLBACK on error)."""
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def run(
        self, conn: Conn, query: LiteralString, params: Params | None = None, *, binary: bool = False
    ) -> psycopg.AsyncCursor[DictRow]:
        """Execute one statement on a connection already held (inside `connection()` / `transaction()`).
        `binary`: rows come back in PostgreSQL's binary format (cheaper to parse: uuids, timestamps, numbers)."""
        self.statements += 1
        return await conn.execute(query, params, binary=binary)

    async def one(self, query: LiteralString, params: Params | None = None) -> DictRow | None:
        """The first row of a single statement, or None."""

        async def attempt(timeout: float | None) -> DictRow | None:
            async with self.connection(timeout) as conn:
                return await (await self.run(conn, query, params)).fetchone()

        return await self._run_statement(query, attempt)

    async def all(self, query: LiteralString, params: Params | None = None) -> list[DictRow]:
        async def attempt(timeout: float | None) -> list[DictRow]:
            async with self.connection(timeout) as conn:
                return await (await self.run(conn, query, params)).fetchall()

        return await self._run_statement(query, attempt)

    async def execute(self, query: LiteralString, params: Params | None = None) -> None:
        async def attempt(timeout: float | None) -> None:
            async with self.connection(timeout) as conn:
                await self.run(conn, query, params)

        await self._run_statement(query, attempt)

    async def _run_statement(self, query: str, attempt: Callable[[float | None], Awaitable[T]]) -> T:
        if query not in _RETRY_SAFE:
            return await attempt(None)
        return await self.retrying(attempt)

    async def retrying(self, attempt: Callable[[float | None], Awaitable[T]]) -> T:
        """Run `attempt(checkout_timeout)` (one retry-safe unit of work), again on a fresh connection after a
        connection-level failure, until it succeeds or the time is up (see the module's docstring)."""
        started = time.monotonic()
        until = started + self.retry_window_sec
        if self._down_since is not None and started - self._down_since > self.retry_window_sec:
            until = started  # known down for a while: one try, and a quick 503
        deadline = _deadline.get()
        if deadline is not None:
            until = min(until, deadline)
        retrying = AsyncRetrying(
            retry=retry_if_exception(_unreachable),
            stop=stop_before_delay(max(0.0, until - started)),
            wait=wait_exponential_jitter(initial=0.05, max=1.0, jitter=0.1),
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            async for trying in retrying:
                with trying:
                    result = await attempt(max(MIN_CHECKOUT_SEC, until - time.monotonic()))
        except Exception as exc:
            if not _unreachable(exc):
                raise  # a busy pool (`DatabaseBusy`, at the deadline) is not the database down
            self._last_trouble = trouble_reason(exc)
            if self._down_since is None:
                self._down_since = started
            raise DatabaseUnavailable(self._last_trouble) from exc
        self._down_since = None
        return result

    def _count_retry(self, state: Any) -> None:
        self.retries += 1
        if self._down_since is None:
            self._down_since = time.monotonic()
