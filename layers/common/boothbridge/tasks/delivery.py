"""Delivering a task's output to the caller's pre-signed `writeUrl` (issue 15; AIGE seeds 000/001).

Each `task_deliveries` row is one PUT of one output: the output's bytes, `Content-Type` = the output's type (the
type a pre-signed S3 PUT was signed for) and no other credentials (the URL's signature is the authorisation;
httpx's own Host, Content-Length, Accept, Accept-Encoding, Connection and User-Agent headers are all an S3
signature of `host` alone tolerates). The outcome (`outcome_of`, pure):
- 2xx: delivered; the task's view then shows the caller's `readUrl`;
- 5xx, 408, 429, a network error or a timeout: tried again after a backoff (`jobs.backoff.retry_delay`, from
  `base_sec` doubling to `max_sec`, with jitter) while the delivery's `expires_at` (the result TTL) allows;
- any other 4xx: failed for good (`delivery_rejected`, with the status and a short excerpt of the body), not
  retried: a signature that does not match will not match next time either. The excerpt keeps printable
  characters only (a NUL in a body could not be stored, and the pass would fail on it every time).

Rows are claimed with `FOR UPDATE SKIP LOCKED` under a lease (`claimed_until`), so the in-process loop, the
scheduled cleanup and other processes never PUT one output twice at once; a lease that runs out (a pass died) makes
the row due again. A writeUrl is a credential: it is never logged (its host only) and never shown.

Unless `allow_private` (TASK_FETCH_ALLOW_PRIVATE; off in production), a writeUrl's host must resolve to public
addresses only, as a task's input URL must (`tasks.fetch.check_host`), and the PUT connects to the address checked:
otherwise a caller could make the service PUT to its own network and read the answer's excerpt. A private address
(or a URL that is no http(s) URL, stored before submissions were checked) fails for good (`delivery_refused`); a
host that does not resolve is retried like a network error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from boothbridge.db.raw import RawDb
from boothbridge.errors import AppError
from boothbridge.jobs.backoff import retry_delay
from boothbridge.media.service import MediaExpired, MediaNotFound, MediaService
from boothbridge.tasks import statements as sql
from boothbridge.tasks.fetch import check_host, pinned

log = logging.getLogger(__name__)

BODY_EXCERPT = 200  # characters of a refusing server's body kept as the delivery's error
RETRYABLE_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Outcome:
    """What one PUT's answer means: `delivered`, `retry` (at `retry_at`) or `failed`, with the error recorded."""

    kind: str
    code: str | None = None
    message: str | None = None
    retry_at: datetime | None = None


def outcome_of(
    status: int | None,
    body: str,
    *,
    attempts: int,
    now: datetime,
    expires_at: datetime,
    base_sec: float,
    max_sec: float,
    error: str | None = None,
) -> Outcome:
    """The outcome of a PUT that answered `status` with `body` (None: no answer, `error` says why), after
    `attempts` PUTs of this output (this one included). See the module docstring."""
    if status is not None and 200 <= status < 300:
        return Outcome("delivered")
    if status is not None and 400 <= status < 500 and status not in RETRYABLE_4XX:
        # Printable characters only: the excerpt is stored as text (PostgreSQL text cannot hold a NUL) and shown.
        excerpt = " ".join("".join(ch if ch.isprintable() else " " for ch in body).split())[:BODY_EXCERPT]
        return Outcome("failed", "delivery_rejected", f"the writeUrl answered HTTP {status}: {excerpt}".strip())
    if status is None:
        code, message = "delivery_unreachable", f"the writeUrl could not be reached ({error or 'network error'})"
    else:
        code, message = "delivery_server_error", f"the writeUrl answered HTTP {status}"
    retry_at = now + timedelta(seconds=retry_delay(attempts, base_sec, max_sec))
    if retry_at >= expires_at:
        return Outcome("failed", "delivery_expired", f"{message}; no time left to try again")
    return Outcome("retry", code, message, retry_at)


class TaskDeliveries:
    """Runs due deliveries. `db`: the raw pool; each pass that has deliveries to make opens its own HTTP client."""

    def __init__(
        self,
        db: RawDb,
        media: MediaService,
        *,
        base_sec: float = 1.0,
        max_sec: float = 300.0,
        put_timeout_sec: float = 60.0,
        lease_sec: float = 120.0,
        batch: int = 20,
        allow_private: bool = True,
    ) -> None:
        self.db = db
        self.allow_private = allow_private
        self.media = media
        self.base_sec = base_sec
        self.max_sec = max_sec
        self.put_timeout_sec = put_timeout_sec
        self.lease_sec = max(lease_sec, put_timeout_sec * 2)
        self.batch = batch

    async def run_due(self, job_id: uuid.UUID | None = None) -> int:
        """One pass: give up deliveries that can no longer happen, then PUT every due one (only `job_id`'s when
        given), `batch` at a time concurrently. Returns how many PUTs were made."""
        await self.db.all(sql.GIVE_UP_DELIVERIES)
        made = 0
        # The client (its TLS context costs ~30 ms of CPU to build) only for a pass that has something to PUT: most
        # passes of the loop find nothing.
        async with contextlib.AsyncExitStack() as stack:
            http: httpx.AsyncClient | None = None
            while True:
                params = {"job": job_id, "batch": self.batch, "lease": self.lease_sec}
                rows = await self.db.all(sql.CLAIM_DELIVERIES, params)
                if not rows:
                    return made
                if http is None:
                    client = httpx.AsyncClient(timeout=self.put_timeout_sec, follow_redirects=False)
                    http = await stack.enter_async_context(client)
                await asyncio.gather(*(self._deliver(http, row) for row in rows))
                made += len(rows)
                if len(rows) < self.batch:
                    return made

    async def _deliver(self, http: httpx.AsyncClient, row: Any) -> None:
        host = _host(row["write_url"])
        fence = {"job": row["job_id"], "index": row["output_index"], "attempts": row["attempts"]}
        try:
            data, ref = await self.media.read(row["media_id"])
        except (MediaNotFound, MediaExpired):
            await self.db.one(
                sql.DELIVERY_FAILED,
                {**fence, "code": "output_gone", "message": "the output is no longer stored"},
            )
            return
        status: int | None = None
        body, error = "", None
        try:
            target = pinned(row["write_url"], await check_host(row["write_url"], self.allow_private))
            headers = {"Content-Type": ref.mime, **target.headers}
            response = await http.put(target.url, content=data, headers=headers, extensions=target.extensions)
            status, body = response.status_code, response.text[: BODY_EXCERPT * 4]
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        except AppError as err:
            if err.code != "input_fetch_failed":  # a private address, or no http(s) URL: never PUT to
                log.info(
                    "task %s output %s delivery to %s refused: %s", row["job_id"], row["output_index"], host, err.code
                )
                message = "the writeUrl names a private or non-public address, or is not an http(s) URL"
                await self.db.one(sql.DELIVERY_FAILED, {**fence, "code": "delivery_refused", "message": message})
                return
            error = "host does not resolve"
        outcome = outcome_of(
            status,
            body,
            attempts=row["attempts"],
            now=datetime.now(UTC),
            expires_at=row["expires_at"],
            base_sec=self.base_sec,
            max_sec=self.max_sec,
            error=error,
        )
        log.info(
            "task %s output %s delivery to %s: HTTP %s, %s",
            row["job_id"], row["output_index"], host, status or error, outcome.kind,
        )  # fmt: skip
        if outcome.kind == "delivered":
            await self.db.one(sql.DELIVERED, fence)
        elif outcome.kind == "retry":
            params = {**fence, "at": outcome.retry_at, "code": outcome.code, "message": outcome.message}
            await self.db.one(sql.RETRY_LATER, params)
        else:
            await self.db.one(sql.DELIVERY_FAILED, {**fence, "code": outcome.code, "message": outcome.message})


def _host(url: str) -> str:
    """The host of a writeUrl, for the log ("?" when there is none or it is no URL)."""
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


class DeliveryLoop:
    """The in-process delivery pass every `poll_sec` (the local emulator, a self-hosted server; on AWS the
    scheduled cleanup runs the pass). A failed pass is logged and the next one tries again.

    `stop()` sets a flag as well as cancelling the task: a cancellation can be swallowed inside a pass (on 3.11,
    `wait_for` in a library drops one that arrives just as its inner call finishes), and the loop must end then
    too instead of sleeping on with the task marked as cancelling (seen as a hung emulator shutdown)."""

    def __init__(self, deliveries: TaskDeliveries, poll_sec: float) -> None:
        self.deliveries = deliveries
        self.poll_sec = poll_sec
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="delivery-loop")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.deliveries.run_due()
            except Exception:
                log.exception("delivery pass failed; will try again")
            with contextlib.suppress(TimeoutError):
                # Sleeps until the next pass, or ends at once when stop() is called.
                async with asyncio.timeout(self.poll_sec):
                    await self._stopping.wait()
