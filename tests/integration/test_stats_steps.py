"""A slot's statistics say where its failed booth requests stopped in its pipeline (issue 14 item 5):
`failures_by_step` of `GET /api/stats/{slot_id}` counts the range's failed requests by step and alternative, from
processing_log rows inserted with SQL at known times; and the OpenAPI document describes it and the job's
pipeline fields."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.support.booth import operator_token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def token(client: httpx.AsyncClient, settings: Settings) -> str:
    return await operator_token(client, settings.credentials_path)


async def log(
    c: Container,
    created: str,
    status: str,
    step: int | None = None,
    alternative: int | None = None,
    *,
    slot: str = "slot-001",
    is_test: bool = False,
) -> None:
    """One booth request of `slot` at `created` (UTC), stopped at `step`/`alternative` when it failed there."""
    http = {"SUCCESS": 200, "ERROR": 502, "TIMEOUT": 504}[status]
    async with c.engine.begin() as conn:
        await conn.execute(
            text(
                """
                INSERT INTO processing_log (slot_id, requested_slot, created_at, status, http_status,
                                            response_time_ms, is_test, failed_step, failed_alternative)
                VALUES (:slot, :slot, :created, :status, :http, 1000, :test, :step, :alternative)
                """
            ),
            {
                "slot": slot,
                "created": datetime.fromisoformat(created).replace(tzinfo=UTC),
                "status": status,
                "http": http,
                "test": is_test,
                "step": step,
                "alternative": alternative,
            },
        )


async def test_failures_by_step_count_the_ranges_failed_requests_by_step_and_alternative(
    client: httpx.AsyncClient, container: Container, token: str
) -> None:
    c = container
    await log(c, "2024-04-01T10:00:00", "ERROR", 1, 0)
    await log(c, "2024-04-01T11:00:00", "ERROR", 1, 1)
    await log(c, "2024-04-02T09:00:00", "ERROR", 1, 0)
    await log(c, "2024-04-03T09:00:00", "ERROR", 0, None)  # no alternative recorded: the step's own provider
    await log(c, "2024-04-03T10:00:00", "ERROR", 2, 1)
    # Not counted: no step (a timeout, a failure before any job ran), a success, a test run, outside the range,
    # another operator's slot.
    await log(c, "2024-04-02T10:00:00", "TIMEOUT")
    await log(c, "2024-04-02T11:00:00", "ERROR")
    await log(c, "2024-04-02T12:00:00", "SUCCESS")
    await log(c, "2024-04-02T13:00:00", "ERROR", 1, 0, is_test=True)
    await log(c, "2024-03-31T23:59:59", "ERROR", 1, 0)
    await log(c, "2024-04-08T00:00:00", "ERROR", 1, 0)
    await log(c, "2024-04-02T14:00:00", "ERROR", 1, 0, slot="slot-041")

    r = await client.get("/api/stats/slot-001", params={"from": "2024-04-01", "to": "2024-04-07"}, headers=auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["failures_by_step"] == [
        {"step_index": 0, "alternative": 0, "count": 1},
        {"step_index": 1, "alternative": 0, "count": 2},
        {"step_index": 1, "alternative": 1, "count": 1},
        {"step_index": 2, "alternative": 1, "count": 1},
    ]
    # The series is as before: the same range's requests.
    assert set(body) == {"slot_id", "range", "metrics", "failures_by_step"}
    assert [(m["period_start"], m["errors"], m["timeouts"]) for m in body["metrics"][:3]] == [
        ("2024-04-01", 2, 0),
        ("2024-04-02", 2, 1),
        ("2024-04-03", 2, 0),
    ]
    # A narrower range counts only its own requests; a range without failures has none.
    day = await client.get(
        "/api/stats/slot-001", params={"from": "2024-04-01", "to": "2024-04-01"}, headers=auth(token)
    )
    assert day.json()["failures_by_step"] == [
        {"step_index": 1, "alternative": 0, "count": 1},
        {"step_index": 1, "alternative": 1, "count": 1},
    ]
    quiet = await client.get("/api/stats/slot-002", params={"from": "2024-04-01"}, headers=auth(token))
    assert quiet.json()["failures_by_step"] == []
    foreign = await client.get("/api/stats/slot-041", headers=auth(token))
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (404, "slot_not_found")


async def test_the_document_describes_steps_progress_and_failures_by_step(client: httpx.AsyncClient) -> None:
    doc: dict[str, Any] = (await client.get("/api/openapi.json")).json()
    schemas = doc["components"]["schemas"]

    def model(path: str) -> dict[str, Any]:
        ref = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        found: dict[str, Any] = schemas[ref.rsplit("/", 1)[-1]]
        return found

    job = model("/api/jobs/{job_id}")
    assert {"steps", "step_index", "step_count", "phase", "progress", "failed_step"} <= set(job["required"])
    assert (job["properties"]["progress"]["minimum"], job["properties"]["progress"]["maximum"]) == (0, 1)
    step = schemas[job["properties"]["steps"]["items"]["$ref"].rsplit("/", 1)[-1]]
    assert set(step["properties"]) == {
        "index", "provider_id", "operation_id", "alternative", "status", "phase", "attempts", "started_at",
        "finished_at", "ms", "cost", "error", "output_media_id",
    }  # fmt: skip
    assert set(step["properties"]["status"]["enum"]) == {
        "pending", "queued", "running", "waiting_provider", "succeeded", "failed", "skipped", "cancelled",
    }  # fmt: skip
    slot = model("/api/stats/{slot_id}")
    assert {"slot_id", "range", "metrics", "failures_by_step"} <= set(slot["required"])
