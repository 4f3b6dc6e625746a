"""Waiting for a connection of the hot pool, telling a busy pool from one that cannot connect (`db.raw` uses it).

A pool with no connection to hand out is either **busy** (its connections are checked out by their users: under
a burst of booths on a saturated event loop) or **unreachable** (it has none open, or connections fail to
open): `db.trouble.pool_kind`. A busy pool is overload, waited for as long as the caller's deadline allows, in one
place of the pool's queue (a waiter that gave up and asked again would go to the back, behind the requests that
came after it); then `DatabaseBusy` (503 `busy`). One that cannot connect ends the wait at the caller's outage
bound, as before: `PoolTimeout`, which `db.raw` treats as the database unreachable.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from psycopg_pool import AsyncConnectionPool, PoolTimeout

from boothbridge.db.trouble import DatabaseBusy, PoolState, checkout_failure, pool_kind

log = logging.getLogger(__name__)

# How often a waiter past its outage bound, whose pool was busy, looks again whether the pool can still connect.
RECHECK_SEC = 0.5


class PoolWaiter:
    """Hands out the pool's connections: `getconn(outage_until, busy_until)` (time.monotonic() instants), and
    `returned()` is called as each goes back to the pool. Counts the connections out (`held`), the looks at a
    busy pool past an outage bound after which the wait went on (`busy_looks`), and the waits that ended busy
    (`busy_timeouts`)."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self.pool = pool
        self.held = 0
        # When the pool last handed a connection out (time.monotonic()): its progress, see `db.trouble.pool_kind`.
        self.last_handed_at = float("-inf")
        self.busy_looks = 0
        self.busy_timeouts = 0

    def returned(self) -> None:
        self.held -= 1

    async def getconn(self, outage_until: float, busy_until: float) -> Any:
        """The next connection the pool hands out. While the pool is busy the wait lasts until `busy_until`,
        then raises `DatabaseBusy`; from `outage_until` on the pool is looked at every RECHECK_SEC, and one that
        cannot connect ends the wait with `PoolTimeout` (so does a timeout with nothing held)."""
        stats = self.pool.get_stats()
        if stats.get("pool_available", 0) > 0 or busy_until <= outage_until:
            # Idle connections: handed out at once (the fast path: no watch); or nothing to tell apart.
            conn = await self._getconn_until(busy_until, stats)
            self._took()
            return conn
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None
        try:
            async with asyncio.timeout(None) as scope:

                def look() -> None:
                    nonlocal handle
                    if pool_kind(self.state(stats)) == "unreachable":
                        scope.reschedule(loop.time())  # ends the wait now (cancels getconn, which is safe)
                    else:
                        self.busy_looks += 1
                        handle = loop.call_later(RECHECK_SEC, look)

                handle = loop.call_later(max(0.0, outage_until - time.monotonic()), look)
                try:
                    conn = await self._getconn_until(busy_until, stats)
                finally:
                    handle.cancel()
        except TimeoutError as exc:  # the scope's: the pool cannot connect
            raise PoolTimeout("no connection in time: the pool cannot open one") from exc
        self._took()
        return conn

    def _took(self) -> None:
        self.held += 1
        self.last_handed_at = time.monotonic()

    async def _getconn_until(self, until: float, stats: Mapping[str, int]) -> Any:
        try:
            conn = await self.pool.getconn(max(0.001, until - time.monotonic()))
        except PoolTimeout as exc:
            if checkout_failure(exc, self.state(stats)) == "busy":
                self.busy_timeouts += 1
                log.warning("no pooled database connection came free in time: the pool is busy")
                raise DatabaseBusy() from exc
            raise
        return conn

    def state(self, before: Mapping[str, int]) -> PoolState:
        """The pool now, for a caller that began to wait when its statistics were `before`. It is handing
        connections out when it gave one to any caller within the last RECHECK_SEC: one that did, then stopped
        (the database went away) is found out by the next look, or at the deadline."""
        errors = self.pool.get_stats().get("connections_errors", 0) - before.get("connections_errors", 0)
        handing_out = time.monotonic() - self.last_handed_at <= RECHECK_SEC
        return PoolState(held=self.held, connect_errors=errors, handing_out=handing_out)
