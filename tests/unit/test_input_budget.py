"""The worker prepares at most a budget of input bytes at once (a burst of claimed camera photos is not read into
memory together), small images are never held back by big ones, and one over the budget goes alone."""

from __future__ import annotations

import asyncio

from boothbridge.jobs.inputs import _ByteBudget


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


class Takers:
    def __init__(self, budget: _ByteBudget) -> None:
        self.budget = budget
        self.inside: set[str] = set()
        self.leave: dict[str, asyncio.Event] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, size: int) -> None:
        self.leave[name] = asyncio.Event()
        self.tasks[name] = asyncio.create_task(self._take(name, size))

    async def _take(self, name: str, size: int) -> None:
        async with self.budget.take(size):
            self.inside.add(name)
            assert self.budget.taken <= self.budget.limit
            try:
                await self.leave[name].wait()
            finally:
                self.inside.discard(name)

    async def finish(self, name: str) -> None:
        self.leave[name].set()
        await self.tasks[name]
        await _settle()


async def test_images_are_prepared_together_only_within_the_budget() -> None:
    takers = Takers(_ByteBudget(100))
    takers.start("a", 60)
    takers.start("b", 60)  # would exceed the budget with a: waits
    takers.start("c", 30)  # fits beside a: not held back by b
    await _settle()
    assert takers.inside == {"a", "c"}
    await takers.finish("a")
    assert takers.inside == {"b", "c"}
    await takers.finish("b")
    await takers.finish("c")
    assert takers.budget.taken == 0


async def test_an_image_over_the_budget_is_prepared_alone() -> None:
    takers = Takers(_ByteBudget(100))
    takers.start("small", 10)
    takers.start("huge", 250)
    await _settle()
    assert takers.inside == {"small"}
    await takers.finish("small")
    assert takers.inside == {"huge"}
    await takers.finish("huge")
    assert takers.budget.taken == 0


async def test_a_cancelled_waiter_or_holder_gives_its_place_back() -> None:
    takers = Takers(_ByteBudget(100))
    takers.start("a", 80)
    takers.start("b", 80)
    takers.start("c", 80)
    await _settle()
    assert takers.inside == {"a"}
    takers.tasks["b"].cancel()  # a waiter
    takers.tasks["a"].cancel()  # the holder
    await _settle()
    assert takers.inside == {"c"}
    assert takers.budget.taken == 80
    await takers.finish("c")
    assert takers.budget.taken == 0 and takers.budget._waiters == []
