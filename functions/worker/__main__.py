"""`python -m functions.worker`: a standalone worker process claiming jobs until SIGTERM/SIGINT.

A stop is graceful: the worker claims nothing more, lets its attempts finish for up to WORKER_GRACE_SEC and hands
the jobs of those still calling their provider back to the queue (requeued at once, no attempt spent), so a
deploy costs no booth its answer. A second signal skips what is left of the grace period.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from boothbridge.bootstrap import build_container
from boothbridge.jobs.worker_loop import WorkerLoop
from boothbridge.platform.logs import configure_logging
from boothbridge.settings import Settings

log = logging.getLogger("functions.worker")


async def main(settings: Settings) -> None:
    c = await build_container(settings, listen=True)
    loop = WorkerLoop(
        c.queue, c.runner, c.hub, concurrency=settings.worker_concurrency, poll_sec=settings.fallback_poll_sec
    )
    stop = asyncio.Event()
    hurry = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            hurry.set()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, on_signal)
    await loop.start()
    print(f"worker {loop.owner} ready", flush=True)
    await stop.wait()
    log.info("worker %s stopping (grace %.1f s)", loop.owner, settings.worker_grace_sec)
    stopping = asyncio.create_task(loop.stop(settings.worker_grace_sec))
    hurried = asyncio.create_task(hurry.wait())
    await asyncio.wait({stopping, hurried}, return_when=asyncio.FIRST_COMPLETED)
    if not stopping.done():
        stopping.cancel()  # a second signal: hand back at once
        await asyncio.gather(stopping, return_exceptions=True)
        await loop.stop(0.0)
    hurried.cancel()
    await c.close()
    print(f"worker {loop.owner} stopped", flush=True)


if __name__ == "__main__":
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    asyncio.run(main(settings))
