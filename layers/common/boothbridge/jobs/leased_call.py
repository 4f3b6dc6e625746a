"""The provider call of one attempt under its lease: a heartbeat extends the lease while the call runs, and a
stopping worker can hand the attempt back (the call cancelled, the job requeued without spending an attempt)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Iterable
from typing import Any

from boothbridge.jobs.model import JobRecord
from boothbridge.jobs.queue import JobQueue, unreachable
from boothbridge.providers.base import Provider, ProviderData, ProviderParked, ProviderRequest, ProviderResult

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """The database answered a heartbeat: this attempt no longer holds the job (taken over, cancelled, ended)."""


class HandedBack(Exception):
    """The worker is stopping: the attempt's provider call was cancelled (or never started) to hand the job back."""


# While the database cannot be reached, a heartbeat is tried again this often (at most every HEARTBEAT_SEC): the
# first one that gets through re-asserts the lease.
HEARTBEAT_RETRY_SEC = 1.0


class LeasedCalls:
    """Provider calls under a lease, and their hand-back. One per runner."""

    def __init__(self, queue: JobQueue, heartbeat_sec: float) -> None:
        self.queue = queue
        self.heartbeat_sec = heartbeat_sec
        # Hand-back (a stopping worker): the tasks whose attempts are to be handed back, and the provider call
        # each task has in flight.
        self._handing_back: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self._calls: weakref.WeakKeyDictionary[asyncio.Task[Any], asyncio.Future[Any]] = weakref.WeakKeyDictionary()

    def hand_back(self, tasks: Iterable[asyncio.Task[Any]]) -> None:
        """The worker is stopping: the attempts these tasks run give their jobs back instead of finishing. A
        provider call in flight is cancelled and none is started from now on; the job is requeued at once without
        spending an attempt (see `JobQueue.hand_back`). An attempt past its provider call (storing its result)
        finishes normally."""
        for task in tasks:
            self._handing_back.add(task)
            call = self._calls.get(task)
            if call is not None:
                call.cancel()

    async def call(
        self, job: JobRecord, provider: Provider, request: ProviderRequest
    ) -> ProviderResult | ProviderParked | ProviderData:
        """The provider call, with a heartbeat extending the lease.

        Only a heartbeat the database answers with "not yours any more" (taken over, cancelled, ended) cancels the
        call. One that cannot reach the database changes nothing: it is tried again every HEARTBEAT_RETRY_SEC and
        the first that gets through re-asserts the lease (fenced by attempt number), so an outage of ours never
        makes anybody call the provider a second time. A hand-back (`hand_back`) cancels the call too."""
        me = asyncio.current_task()
        if me is not None and me in self._handing_back:
            raise HandedBack()
        self.queue.hold(job)  # from now on never claimed by this worker again, whatever its lease says
        call: asyncio.Future[ProviderResult | ProviderParked | ProviderData] = asyncio.ensure_future(
            asyncio.wait_for(provider.run(request), request.timeout_sec)
        )
        if me is not None:
            self._calls[me] = call
        lost = False

        async def beat() -> None:
            nonlocal lost
            delay = self.heartbeat_sec
            while True:
                await asyncio.sleep(delay)
                try:
                    async with asyncio.timeout(max(self.heartbeat_sec, HEARTBEAT_RETRY_SEC)):
                        held = await self.queue.heartbeat(job.id, job.attempt)
                except Exception as exc:  # no answer is not "not yours": the call goes on
                    if isinstance(exc, TimeoutError) or unreachable(exc):
                        log.warning(
                            "job %s attempt %s: heartbeat could not reach the database (%s); the call goes on",
                            job.id,
                            job.attempt,
                            type(exc).__name__,
                        )
                    else:
                        log.exception("job %s attempt %s: heartbeat failed; the call goes on", job.id, job.attempt)
                    delay = min(self.heartbeat_sec, HEARTBEAT_RETRY_SEC)
                    continue
                if not held:
                    lost = True
                    call.cancel()
                    return
                if delay != self.heartbeat_sec:
                    log.info("job %s attempt %s: lease re-asserted", job.id, job.attempt)
                delay = self.heartbeat_sec

        beater = asyncio.create_task(beat())
        try:
            return await call
        except asyncio.CancelledError:
            if lost:
                raise LeaseLost() from None
            if me is not None and me in self._handing_back and not me.cancelling():
                raise HandedBack() from None
            raise
        finally:
            if me is not None:
                self._calls.pop(me, None)
            beater.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beater
