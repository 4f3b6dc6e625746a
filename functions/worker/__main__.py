"""`python -m functions.worker`: a standalone worker process claiming jobs until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from boothbridge.container import build_container
from boothbridge.jobs.worker_loop import WorkerLoop
from boothbridge.settings import Settings


async def main() -> None:
    settings = Settings()
    c = await build_container(settings, listen=True)
    loop = WorkerLoop(
        c.queue, c.runner, c.hub, concurrency=settings.worker_concurrency, poll_sec=settings.fallback_poll_sec
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await loop.start()
    print(f"worker {loop.owner} ready", flush=True)
    await stop.wait()
    await loop.stop()
    await c.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main())
