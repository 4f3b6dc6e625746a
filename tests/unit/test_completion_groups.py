"""CompletionGroups without a database: who goes together, and what a failed group tells each caller."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from boothbridge.jobs.completions import CompletionGroups


class Recorder:
    def __init__(self, fail_with: Exception | None = None, refuse: set[uuid.UUID] | None = None) -> None:
        self.groups: list[list[uuid.UUID]] = []
        self.fail_with = fail_with
        self.refuse = refuse or set()

    async def run(self, group: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        self.groups.append([p["id"] for p in group])
        await asyncio.sleep(0)  # a round trip: others arrive meanwhile
        if self.fail_with is not None:
            raise self.fail_with
        return [{"id": p["id"], "attempt": p["attempt"]} for p in group if p["id"] not in self.refuse]


async def test_what_arrives_together_goes_together_up_to_the_limit() -> None:
    recorder = Recorder()
    groups = CompletionGroups(recorder.run, max_group=4)
    ids = [uuid.uuid4() for _ in range(9)]

    rows = await asyncio.gather(*(groups.submit({"id": i, "attempt": 1}) for i in ids))

    assert [r["id"] if r else None for r in rows] == ids
    assert [len(g) for g in recorder.groups] == [4, 4, 1]
    assert groups.statements == 3


async def test_completions_arriving_during_a_statement_wait_for_it_and_go_together() -> None:
    recorder = Recorder()
    groups = CompletionGroups(recorder.run)
    first = asyncio.ensure_future(groups.submit({"id": uuid.uuid4(), "attempt": 1}))
    await asyncio.sleep(0)  # the first statement is now in flight
    later = [asyncio.ensure_future(groups.submit({"id": uuid.uuid4(), "attempt": 1})) for _ in range(5)]

    await asyncio.gather(first, *later)

    assert [len(g) for g in recorder.groups] == [1, 5]


async def test_a_refused_completion_gets_none_and_its_group_still_completes() -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    groups = CompletionGroups(Recorder(refuse={ids[1]}).run)

    rows = await asyncio.gather(*(groups.submit({"id": i, "attempt": 2}) for i in ids))

    assert [r is not None for r in rows] == [True, False, True]


async def test_one_job_twice_goes_in_two_statements() -> None:
    recorder = Recorder()
    groups = CompletionGroups(recorder.run)
    job, other = uuid.uuid4(), uuid.uuid4()

    await asyncio.gather(*(groups.submit({"id": i, "attempt": 1}) for i in (other, job, job)))

    assert recorder.groups == [[other, job], [job]]


async def test_a_failed_group_raises_in_every_caller_of_that_group_only() -> None:
    recorder = Recorder(fail_with=ConnectionError("gone"))
    groups = CompletionGroups(recorder.run)

    results = await asyncio.gather(
        *(groups.submit({"id": uuid.uuid4(), "attempt": 1}) for _ in range(3)), return_exceptions=True
    )

    assert all(isinstance(r, ConnectionError) for r in results)
    recorder.fail_with = None
    assert await groups.submit({"id": uuid.uuid4(), "attempt": 1}) is not None


async def test_a_caller_that_stops_waiting_is_left_out_of_the_next_group() -> None:
    recorder = Recorder()
    groups = CompletionGroups(recorder.run)
    first = asyncio.ensure_future(groups.submit({"id": uuid.uuid4(), "attempt": 1}))
    await asyncio.sleep(0)
    gone_id = uuid.uuid4()
    gone = asyncio.ensure_future(groups.submit({"id": gone_id, "attempt": 1}))
    kept = asyncio.ensure_future(groups.submit({"id": uuid.uuid4(), "attempt": 1}))
    await asyncio.sleep(0)
    gone.cancel()

    await asyncio.gather(first, kept)

    with pytest.raises(asyncio.CancelledError):
        await gone
    assert all(gone_id not in g for g in recorder.groups)


async def test_one_refused_completion_fails_alone_and_the_rest_of_its_group_is_recorded() -> None:
    bad = uuid.uuid4()

    class RefusesOne(Recorder):
        async def run(self, group: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
            self.groups.append([p["id"] for p in group])
            await asyncio.sleep(0)
            if any(p["id"] == bad for p in group):
                raise ValueError("numeric field overflow")  # a statement error: the whole statement rolled back
            return [{"id": p["id"], "attempt": p["attempt"]} for p in group]

    recorder = RefusesOne()
    groups = CompletionGroups(recorder.run)
    ids = [uuid.uuid4(), bad, uuid.uuid4()]

    results = await asyncio.gather(*(groups.submit({"id": i, "attempt": 1}) for i in ids), return_exceptions=True)

    assert isinstance(results[1], ValueError)
    assert [r["id"] for r in (results[0], results[2]) if isinstance(r, dict)] == [ids[0], ids[2]]
    assert recorder.groups == [ids, [ids[0]], [bad], [ids[2]]]
