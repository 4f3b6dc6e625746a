"""The load generators: DSLR-like multipart posts in closed loops, an open (Poisson) loop and one burst.

They run in the load-client process (`bench/load_client.py`); nothing here imports the product. `Sample` is
also what the server process gets back, one per request, as a JSON row.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

# The text fields DSLR Remote Pro sends with every photo (captured from a real booth), plus `password`.
DSLR_FIELDS = {
    "time": "1758217512",
    "user_id": "Acer",
    "id": "CY04N068111304S2L_00000001.",
    "profile": "C:\\Users\\Acer\\Documents\\PhotoboothImages\\setup_Serg.xml",
    "status": "C:\\Users\\Acer\\Documents\\PhotoboothImages\\screenSerg\\preview.jpg",
    "hash": "7b6c683e1d3fd29c8701791c54e3c12a236f5a5b",
    "name": "DESKTOP-K968T3F",
    "model": "Windows",
    "version": "3.30.2",
}
DSLR_FILENAME = "IMG_0003.JPG"


def dslr_fields(password: str) -> dict[str, str]:
    return {**DSLR_FIELDS, "password": password}


@dataclass(frozen=True)
class Sample:
    latency: float  # seconds, request sent -> full response read (client side)
    received: float  # time.time() in the client when the response was read
    status: int  # HTTP status, -1 when the request failed without one
    ok: bool  # 200 and the body is the photo that was sent
    job_id: uuid.UUID | None  # the answer's X-Job-Id

    def to_row(self) -> list[Any]:
        return [self.latency, self.received, self.status, self.ok, str(self.job_id) if self.job_id else None]

    @classmethod
    def from_row(cls, row: list[Any]) -> Sample:
        latency, received, status, ok, job = row
        return cls(float(latency), float(received), int(status), bool(ok), uuid.UUID(job) if job else None)


async def post_photo(client: httpx.AsyncClient, path: str, photo: bytes, password: str) -> Sample:
    """One POST as DSLR Remote Pro sends it: the booth's fields plus fileToUpload, with Expect: 100-continue."""
    started = time.perf_counter()
    try:
        r = await client.post(
            path,
            data=dslr_fields(password),
            files={"fileToUpload": (DSLR_FILENAME, photo, "image/jpeg")},
            headers={"Expect": "100-continue"},
        )
        body = r.content
    except httpx.HTTPError:
        return Sample(time.perf_counter() - started, time.time(), -1, False, None)
    done = time.perf_counter()
    job = r.headers.get("x-job-id")
    return Sample(
        latency=done - started,
        received=time.time(),
        status=r.status_code,
        ok=r.status_code == 200 and body == photo,
        job_id=uuid.UUID(job) if job else None,
    )


async def closed_loop(
    client: httpx.AsyncClient, path: str, photos: list[bytes], concurrency: int, password: str
) -> list[Sample]:
    """`concurrency` clients, each sending its next photo as soon as its previous answer arrived."""
    queue = iter(photos)
    samples: list[Sample] = []

    async def one_client() -> None:
        for photo in queue:
            samples.append(await post_photo(client, path, photo, password))

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return samples


async def open_loop(
    client: httpx.AsyncClient,
    path: str,
    photos: list[bytes],
    rate: float,
    password: str,
    seed: int,
    stop_slow: tuple[float, int] | None = None,
) -> list[Sample]:
    """Requests arriving at random (Poisson) times at `rate` per second, whatever the answers take.

    `stop_slow=(seconds, count)`: send no more once `count` requests took longer than `seconds` (answered that
    late, or still unanswered that long) or one got a wrong answer; the result then has fewer samples than
    photos. The capacity search uses it to end a step whose p99 is already over its limit."""
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    start = loop.time()
    at = 0.0
    tasks: list[tuple[float, asyncio.Task[Sample]]] = []
    for photo in photos:
        at += rng.expovariate(rate)
        await asyncio.sleep(max(0.0, start + at - loop.time()))
        if stop_slow is not None and over_limit(tasks, loop.time(), *stop_slow):
            break
        tasks.append((loop.time(), asyncio.create_task(post_photo(client, path, photo, password))))
    return list(await asyncio.gather(*(task for _, task in tasks)))


def over_limit(tasks: list[tuple[float, asyncio.Task[Sample]]], now: float, seconds: float, count: int) -> bool:
    """True once `count` of the requests (started at loop time, task) are slower than `seconds`, or one is wrong."""
    slow = 0
    for started, task in tasks:
        if not task.done():
            slow += now - started > seconds
        elif not (sample := task.result()).ok:
            return True
        else:
            slow += sample.latency > seconds
    return slow >= count


async def burst(client: httpx.AsyncClient, path: str, photos: list[bytes], password: str) -> list[Sample]:
    """All photos posted at once; returns when every one is answered."""
    return list(await asyncio.gather(*(post_photo(client, path, p, password) for p in photos)))


def client_limits(connections: int) -> httpx.Limits:
    """Keep-alive pool with room for every concurrent request (plus a few), so none queues in the client."""
    return httpx.Limits(max_connections=connections + 16, max_keepalive_connections=connections + 16)
