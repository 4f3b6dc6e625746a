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
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, LiteralString

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from boothbridge.db.engine import libpq_url

log = logging.getLogger(__name__)

Params = Mapping[str, Any]
Conn = psycopg.AsyncConnection[DictRow]


class RawDb:
    """A psycopg connection pool with one-call helpers. Rows are dicts. Counts its statements and checkouts
    (read by the benchmark; cheap enough to keep)."""

    def __init__(self, url: str, max_size: int, *, recycle_sec: float = 300.0, timeout_sec: float = 30.0) -> None:
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
        )
        self.statements = 0
        self.checkouts = 0

    async def open(self) -> None:
        await self.pool.open(wait=True)

    async def close(self) -> None:
        await self.pool.close()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        """A pooled autocommit connection. After a lost connection (server restart, network) the pool's other
        idle connections are checked at once, so one failed statement does not become one per connection."""
        self.checkouts += 1
        broken = False
        try:
            async with self.pool.connection() as conn:
                try:
                    yield conn
                finally:
                    broken = conn.broken
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

    async def run(self, conn: Conn, query: LiteralString, params: Params | None = None) -> psycopg.AsyncCursor[DictRow]:
        """Execute one statement on a connection already held (inside `connection()` / `transaction()`)."""
        self.statements += 1
        return await conn.execute(query, params)

    async def one(self, query: LiteralString, params: Params | None = None) -> DictRow | None:
        """The first row of a single statement, or None."""
        async with self.connection() as conn:
            return await (await self.run(conn, query, params)).fetchone()

    async def all(self, query: LiteralString, params: Params | None = None) -> list[DictRow]:
        async with self.connection() as conn:
            return await (await self.run(conn, query, params)).fetchall()

    async def execute(self, query: LiteralString, params: Params | None = None) -> None:
        async with self.connection() as conn:
            await self.run(conn, query, params)
