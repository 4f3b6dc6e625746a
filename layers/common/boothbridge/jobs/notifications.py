"""One LISTEN connection per process, fanning NOTIFYs out to in-process waiters.

Lost wakeups are closed three ways: a waiter subscribes *before* it reads the job row (so a NOTIFY sent
between the read and the wait still reaches it); a slow fallback poll, one query per process for all waiting
jobs, wakes the waiters of jobs that ended; and when the LISTEN connection drops, every waiter is woken at once
(and again after the reconnect), because notifications sent while we were disconnected are gone for good.

While the database is unreachable the hub tries again with exponential backoff and jitter (from
`reconnect_delay_sec` up to `max_reconnect_delay_sec`), and wakes nobody meanwhile: each failed attempt waking
every waiter would send them all to a database that is not there, again and again. It resumes by itself when
the database is back; `connected` and `disconnected_for` say how it stands (`/health`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator

import psycopg

from boothbridge.jobs.model import JobWithResult
from boothbridge.jobs.queue import CHANNEL_DONE, CHANNEL_NEW

log = logging.getLogger(__name__)

# Given the ids of jobs someone here waits for, return those that have ended.
EndedPoll = Callable[[list[uuid.UUID]], Awaitable[Iterable[uuid.UUID]]]


class NotificationHub:
    """Owns the process's single LISTEN connection; hands out per-job wake events."""

    def __init__(
        self,
        conninfo: str,
        reconnect_delay_sec: float = 0.5,
        *,
        poll: EndedPoll | None = None,
        poll_interval_sec: float = 2.0,
        max_reconnect_delay_sec: float = 2.0,
    ) -> None:
        self._conninfo = conninfo
        self._reconnect_delay = reconnect_delay_sec
        self._max_reconnect_delay = max(reconnect_delay_sec, max_reconnect_delay_sec)
        self._disconnected_at: float | None = time.monotonic()
        self._poll = poll
        self._poll_interval = poll_interval_sec
        self._poll_task: asyncio.Task[None] | None = None
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = {}
        self._final: dict[uuid.UUID, JobWithResult] = {}
        # Jobs whose ending statement this process is running, and whether their NOTIFY came meanwhile.
        self._ending: dict[uuid.UUID, bool] = {}
        self._new_job_callbacks: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[object] | None = None
        self._connected = asyncio.Event()
        self.connects = 0  # how many times the LISTEN connection was (re)established

    async def start(self, wait_connected_sec: float = 10.0) -> None:
        self._task = asyncio.create_task(self._run(), name="notification-hub")
        if self._poll is not None:
            self._poll_task = asyncio.create_task(self._poll_loop(), name="notification-hub-poll")
        await asyncio.wait_for(self._connected.wait(), wait_connected_sec)

    async def stop(self) -> None:
        for task in (self._task, self._poll_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._poll_task = None
        self._wake_all()

    @property
    def polls(self) -> bool:
        """True when this hub runs the per-process fallback poll (waiters need no timers of their own)."""
        return self._poll is not None

    def job_ended(self, job_id: uuid.UUID, final: JobWithResult | None = None) -> None:
        """Wake this process's waiters of `job_id` now (a job finished here: no need to wait for the NOTIFY).

        `final`: the job as it ended, returned by the very statement that ended it (committed, and terminal, so
        it cannot change any more). Waiters take it instead of reading the row (`final()`); it is kept while
        anyone here is subscribed to the job."""
        events = self._waiters.get(job_id)
        if not events:
            return
        if final is not None and final.is_terminal:
            self._final[job_id] = final
        for event in events:
            event.set()

    @contextlib.contextmanager
    def ending_here(self, job_id: uuid.UUID) -> Iterator[None]:
        """Hold back `job_id`'s done-NOTIFY while this process runs the statement that may end the job.

        Whoever holds it hands the ended job over with `job_ended(job_id, final)`. Without the hold, the NOTIFY of
        that very commit often reaches the LISTEN connection first (both land in the same loop turn under load)
        and wakes the waiters to read the row they are about to be handed. If the block ends without a job handed
        over (the attempt was fenced out, the statement failed) and a NOTIFY came meanwhile, the waiters are
        woken then, as the NOTIFY would have woken them: nothing is lost, only delayed by one statement."""
        self._ending[job_id] = False
        try:
            yield
        finally:
            noticed = self._ending.pop(job_id, False)
            if noticed and job_id not in self._final:
                self.job_ended(job_id)

    def holds(self, job_id: uuid.UUID) -> bool:
        """True while `ending_here(job_id)` holds the job's NOTIFY back."""
        return job_id in self._ending

    def final(self, job_id: uuid.UUID) -> JobWithResult | None:
        """The ended job handed over by `job_ended`, if there was one (see there)."""
        return self._final.get(job_id)

    @property
    def listen_connections(self) -> int:
        """Open LISTEN connections held by this hub: 1 while connected, else 0 (never more)."""
        return 1 if self._conn is not None and not self._conn.closed else 0

    @property
    def waiting(self) -> int:
        return sum(len(events) for events in self._waiters.values())

    def on_new_job(self, callback: Callable[[], None]) -> None:
        """Call `callback` (sync, cheap) whenever work may have become claimable."""
        self._new_job_callbacks.append(callback)

    @contextlib.contextmanager
    def subscribe(self, job_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """An event set whenever `job_id` may have ended. Subscribe first, then read the row."""
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            events = self._waiters.get(job_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[job_id]
                    self._final.pop(job_id, None)

    @property
    def connected(self) -> bool:
        """Whether the LISTEN connection is up (notifications reach this process's waiters)."""
        return self._disconnected_at is None

    @property
    def disconnected_for(self) -> float | None:
        """Seconds since the LISTEN connection was lost (None while it is up)."""
        return None if self._disconnected_at is None else time.monotonic() - self._disconnected_at

    async def _run(self) -> None:
        delay = self._reconnect_delay
        while True:
            was_listening = False
            try:
                async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
                    self._conn = conn
                    await conn.execute(f"LISTEN {CHANNEL_DONE}")
                    await conn.execute(f"LISTEN {CHANNEL_NEW}")
                    was_listening = True
                    if self._disconnected_at is not None and self.connects:
                        log.warning("LISTEN connection back after %.1fs", time.monotonic() - self._disconnected_at)
                    self._disconnected_at = None
                    delay = self._reconnect_delay
                    self.connects += 1
                    self._connected.set()
                    # Anything that ended while we were not listening would be missed: wake everyone.
                    self._wake_all()
                    self._notify_new_job()
                    async for note in conn.notifies():
                        self._dispatch(note.channel, note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost or refused: keep retrying, never die
                if was_listening or self._disconnected_at is None:
                    log.warning("LISTEN connection lost (%s); reconnecting", type(exc).__name__)
            finally:
                self._conn = None
            if was_listening:
                self._disconnected_at = time.monotonic()
                # Lost: whatever ended from now on is not heard. Wake everyone once (their reads are retried on
                # fresh connections; the reconnect wakes them again).
                self._wake_all()
            elif self._disconnected_at is None:
                self._disconnected_at = time.monotonic()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._max_reconnect_delay)

    async def _poll_loop(self) -> None:
        assert self._poll is not None
        while True:
            await asyncio.sleep(self._poll_interval)
            if not self._waiters:
                continue
            try:
                ended = await self._poll(list(self._waiters))
            except Exception as exc:  # the database is unreachable: waiters still have their deadlines
                log.warning("fallback poll failed (%s)", type(exc).__name__)
                continue
            for job_id in ended:
                self.job_ended(job_id)

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == CHANNEL_NEW:
            self._notify_new_job()
            return
        try:
            job_id = uuid.UUID(payload)
        except ValueError:
            return
        if job_id in self._ending:
            self._ending[job_id] = True  # its holder hands the job over, or wakes the waiters when it lets go
            return
        self.job_ended(job_id)

    def _notify_new_job(self) -> None:
        for callback in self._new_job_callbacks:
            callback()

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()
