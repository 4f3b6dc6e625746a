"""The statistics page shows where a slot's failed requests stopped in its pipeline (issue 14 item 5): a small
table per chosen slot, by step and alternative, from processing_log rows inserted with SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from tests.browser.conftest import UI

pytestmark = pytest.mark.browser


async def failed_request(c: Container, slot: str, step: int, alternative: int, hours_ago: float = 1) -> None:
    async with c.engine.begin() as conn:
        await conn.execute(
            text(
                """
                INSERT INTO processing_log (slot_id, requested_slot, created_at, status, http_status,
                                            response_time_ms, failed_step, failed_alternative)
                VALUES (:slot, :slot, :created, 'ERROR', 502, 900, :step, :alternative)
                """
            ),
            {
                "slot": slot,
                "created": datetime.now(UTC) - timedelta(hours=hours_ago),
                "step": step,
                "alternative": alternative,
            },
        )


async def rows(ui: UI) -> list[list[str]]:
    cells: list[list[str]] = await ui.page.eval_on_selector_all(
        "#failures-body tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))"
    )
    return cells


async def test_the_failed_steps_of_a_slot_are_tabled_and_follow_the_chosen_slot(ui: UI, container: Container) -> None:
    for step, alternative in ((1, 0), (1, 0), (1, 1), (2, 0)):
        await failed_request(container, "slot-002", step, alternative)
    await failed_request(container, "slot-002", 0, 0, hours_ago=24 * 20)  # older than the 14 days shown

    await ui.login()
    await ui.open("stats.html")
    # The first slot with errors is chosen by itself.
    await ui.page.wait_for_selector("#failures-body tr[data-step]")
    assert await ui.page.input_value("#failures-slot") == "slot-002"
    assert await rows(ui) == [
        ["Step 2", "the step's own", "2"],
        ["Step 2", "alternative 1", "1"],
        ["Step 3", "the step's own", "1"],
    ]
    await ui.page.select_option("#failures-slot", "slot-001")
    await ui.page.wait_for_selector("#failures-body td.muted")
    assert await rows(ui) == [["No failed request stopped at a step in the last 14 days."]]
