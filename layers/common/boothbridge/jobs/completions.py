"""Completions in groups (group commit): many attempts' successes recorded by one statement and one commit.

A worker finishing many jobs at once (the worker loop runs up to WORKER_CONCURRENCY jobs; a burst ends many of
them together) would otherwise pay one round trip and one commit (a WAL flush) per job. `CompletionGroups` sends a
completion at once when no statement is in flight (with whatever was submitted in the same turn of the event loop),
so an idle worker adds no latency: there is no timer; completions that arrive while a statement is in flight wait
for it and then go together in the next one (`COMPLETE_MANY`), up to `max_group` per statement. Each completion
is still fenced by its own attempt number: the statement completes only the jobs that attempt still holds, and
each caller learns its own job's row (None: the attempt no longer held the job).

Only a first try goes through here: when the grouped statement fails for connection reasons (it may have applied),
every caller of the group gets the exception and handles it alone (`JobQueue` retries its own completion through a
database outage). When it fails for any other reason it rolled back, and each completion of the group is run again
alone, so only a faulty one gets the error and the others' results, already paid for, are recorded.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from boothbridge.db.trouble import is_connection_trouble

Params = Mapping[str, Any]
RunGroup = Callable[[Sequence[Params]], Awaitable[Sequence[Mapping[str, Any]]]]

DEFAULT_MAX_GROUP = 64


class CompletionGroups:
    """Groups the completions submitted while a statement is in flight. `run` executes one group and returns the
    rows of the jobs it completed (each with an `id`); a submitted job absent from them was not completed."""

    def __init__(self, run: RunGroup, max_group: int = DEFAULT_MAX_GROUP) -> None:
        self._run = run
        self.max_group = max_group
        self._pending: list[tuple[Params, asyncio.Future[Mapping[str, Any] | None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.statements = 0  # how many grouped statements ran (read by tests and the benchmark)

    async def submit(self, params: Params) -> Mapping[str, Any] | None:
        """Complete one attempt (`params["id"]` names its job); its job's row, or None when the fence refused it.
        Raises what the grouped statement raised."""
        future: asyncio.Future[Mapping[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._pending.append((params, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="boothbridge-completions")
        return await future

    def _next_group(self) -> list[tuple[Params, asyncio.Future[Mapping[str, Any] | None]]]:
        """Up to `max_group` pending completions, at most one per job (two completions of one job in one statement
        would both meet its row); callers that gave up waiting are dropped."""
        group: list[tuple[Params, asyncio.Future[Mapping[str, Any] | None]]] = []
        rest: list[tuple[Params, asyncio.Future[Mapping[str, Any] | None]]] = []
        jobs: set[uuid.UUID] = set()
        for item in self._pending:
            params, future = item
            if future.done():
                continue
            if len(group) < self.max_group and params["id"] not in jobs:
                group.append(item)
                jobs.add(params["id"])
            else:
                rest.append(item)
        self._pending = rest
        return group

    async def _flush(self) -> None:
        while self._pending:
            group = self._next_group()
            if group:
                await self._settle(group)

    async def _settle(self, group: list[tuple[Params, asyncio.Future[Mapping[str, Any] | None]]]) -> None:
        """Run one group and answer its callers."""
        self.statements += 1
        try:
            rows = await self._run([params for params, _ in group])
        except Exception as exc:
            if len(group) > 1 and not is_connection_trouble(exc):
                # Not the connection: one completion's values were refused (say a cost beyond the column's
                # precision) and the statement rolled back. Each goes again alone, so only the faulty one gets the
                # error and the others' results, already paid for, are recorded.
                for item in group:
                    if not item[1].done():
                        await self._settle([item])
                return
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            # Cancelled (the process is stopping): the callers must not wait for an answer that never comes.
            for _, future in group:
                future.cancel()
            for _, future in self._pending:
                future.cancel()
            self._pending = []
            raise
        by_job = {row["id"]: row for row in rows}
        for params, future in group:
            if not future.done():
                future.set_result(by_job.get(params["id"]))
