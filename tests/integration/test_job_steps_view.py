"""The job detail, the job list and the event stream show where a job is in its pipeline (issue 14 item 5): jobs
put by SQL in the states a pipeline passes through (its row as the runner leaves it, its finished steps as
job_steps rows), read back through the operator API on real PostgreSQL and compared whole: the steps in order,
their statuses, attempts, clocks, the cost split, outputs, the phase, the progress and the failed step. The stream
is driven by UPDATEs, each made once the event before it arrived."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.jobs.model import JobRecord
from boothbridge.settings import Settings
from local.app import Emulator
from tests.integration.test_jobs_api import _events, auth, finish
from tests.integration.test_queue import new_job, result_ref
from tests.support.booth import operator_token
from tests.support.live_server import serving

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def step(provider_id: str, operation_id: str, *alternatives: tuple[str, str], optional: bool = False) -> Any:
    return {
        "provider_id": provider_id,
        "operation_id": operation_id,
        "settings_json": {"prompt": "a watercolour"},
        "alternatives": [{"provider_id": p, "operation_id": o, "settings_json": {}} for p, o in alternatives],
        "optional": optional,
    }


# Three steps: a reframe, an edit with an alternative, a style transfer with an alternative.
PIPELINE = {
    "steps": [
        step("local", "reframe"),
        step("gemini", "change_image", ("turbotext", "change_image")),
        step("gemini", "style_transfer", ("turbotext", "style_transfer")),
    ],
    "finishing": {"width": 1800, "height": 1200},
    "max_attempts": 3,
}
# An optional upscale in the middle.
WITH_OPTIONAL = {
    "steps": [step("local", "reframe"), step("fal", "upscale", optional=True), step("local", "resize")],
    "finishing": {},
    "max_attempts": 3,
}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"run_worker": False}  # the jobs stay as the tests put them


@pytest.fixture
async def token(client: httpx.AsyncClient, settings: Settings) -> str:
    return await operator_token(client, settings.credentials_path)


async def shape(c: Container, job: JobRecord, **columns: Any) -> None:
    """Set the job's columns as a pipeline's run leaves them (`pipeline` as a dict)."""
    if "pipeline" in columns:
        columns["pipeline"] = json.dumps(columns["pipeline"])
    sets = ", ".join(
        f"{name} = CAST(:{name} AS jsonb)" if name == "pipeline" else f"{name} = :{name}" for name in columns
    )
    async with c.engine.begin() as conn:
        await conn.execute(
            text(f"UPDATE jobs SET {sets}, updated_at = now() WHERE id = :id"), {**columns, "id": job.id}
        )


async def record(
    c: Container, job: JobRecord, step: tuple[int, int, str, str], status: str, start: float, end: float, **extra: Any
) -> None:
    """A job_steps row: the step (index, alternative, provider, operation) the job finished with, from `at(start)`
    to `at(end)`."""
    index, alternative, provider_id, operation_id = step
    row = {
        "job_id": job.id,
        "step_index": index,
        "alternative": alternative,
        "provider_id": provider_id,
        "operation_id": operation_id,
        "status": status,
        "attempts": 1,
        "started_at": at(start),
        "finished_at": at(end),
        "cost": None,
        "error_code": None,
        "error_message": None,
        "output_media_id": None,
    } | extra
    names = ", ".join(row)
    values = ", ".join(f":{name}" for name in row)
    async with c.engine.begin() as conn:
        await conn.execute(text(f"INSERT INTO job_steps ({names}) VALUES ({values})"), row)


async def iso(c: Container, moment: datetime) -> str:
    """A moment as the API writes it (in the database session's zone, as the rows come back)."""
    async with c.engine.connect() as conn:
        value: datetime = (await conn.execute(text("SELECT CAST(:t AS timestamptz)"), {"t": moment})).scalar_one()
    return value.isoformat()


def entry(step: tuple[int, int, str, str], **fields: Any) -> dict[str, Any]:
    """A step entry as the detail shows it; unmeasured by default (a step not reached)."""
    index, alternative, provider_id, operation_id = step
    base = {
        "index": index,
        "provider_id": provider_id,
        "operation_id": operation_id,
        "alternative": alternative,
        "status": "pending",
        "phase": "pending",
        "attempts": 0,
        "started_at": None,
        "finished_at": None,
        "ms": None,
        "cost": None,
        "error": None,
        "output_media_id": None,
    }
    return base | fields


async def done(
    c: Container, step: tuple[int, int, str, str], status: str, start: float, end: float, **fields: Any
) -> dict[str, Any]:
    """The entry of a step the job finished with (as `record` put it), from `at(start)` to `at(end)`."""
    times = {"started_at": await iso(c, at(start)), "finished_at": await iso(c, at(end))}
    return entry(step, status=status, phase=status, attempts=1, ms=round((end - start) * 1000)) | times | fields


# The steps (index, alternative, provider, operation) of PIPELINE and WITH_OPTIONAL.
REFRAME, EDIT, EDIT_ALT = (
    (0, 0, "local", "reframe"),
    (1, 0, "gemini", "change_image"),
    (1, 1, "turbotext", "change_image"),
)
STYLE, STYLE_ALT = (2, 0, "gemini", "style_transfer"), (2, 1, "turbotext", "style_transfer")
UPSCALE, RESIZE = (1, 0, "fal", "upscale"), (2, 0, "local", "resize")
GEMINI_503 = {"error_code": "upstream_unavailable", "error_message": "gemini 503"}
GEMINI_503_ERROR = {"code": "upstream_unavailable", "message": "gemini 503"}


PIPELINE_KEYS = ("steps", "step_index", "step_count", "phase", "progress", "failed_step")


async def detail(client: httpx.AsyncClient, token: str, job_id: uuid.UUID) -> dict[str, Any]:
    r = await client.get(f"/api/jobs/{job_id}", headers=auth(token))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def pipeline_view(body: dict[str, Any]) -> dict[str, Any]:
    return {key: body[key] for key in PIPELINE_KEYS}


async def test_detail_and_list_show_each_state_a_pipeline_passes_through(
    client: httpx.AsyncClient, container: Container, token: str
) -> None:
    c = container
    out0, out1 = str(uuid.uuid4()), str(uuid.uuid4())
    begun = {"started_at": at(0)}

    # 1. Queued at step 0.
    queued = await new_job(c)
    await shape(c, queued, pipeline=PIPELINE, provider_id="local", operation_id="reframe")

    # 2. Running step 1's alternative: step 0 succeeded, step 1's own provider failed for good. The row keeps the
    # error that made it move on (the runner's move statement leaves it): not the running step's error.
    running = await new_job(c)
    await shape(
        c, running, pipeline=PIPELINE, status="running", step_index=1, alternative=1, provider_id="turbotext",
        operation_id="change_image", attempt=4, step_attempt_base=3, step_started_at=at(5), cost=0.15, **begun,
        **GEMINI_503,
    )  # fmt: skip
    await record(c, running, REFRAME, "succeeded", 0, 1.25, cost=0.1, output_media_id=out0)
    await record(c, running, EDIT, "failed", 2, 5, attempts=2, cost=0.05, **GEMINI_503)

    # 3. Parked at step 1, waiting for the provider's callback.
    waiting = await new_job(c)
    await shape(
        c, waiting, pipeline=PIPELINE, status="waiting_provider", step_index=1, provider_id="gemini",
        operation_id="change_image", attempt=2, step_attempt_base=1, step_started_at=at(3), **begun,
    )  # fmt: skip
    await record(c, waiting, REFRAME, "succeeded", 0, 2, output_media_id=out0)

    # 4. Failed at step 2 after both its alternatives failed.
    failed = await new_job(c)
    await shape(
        c, failed, pipeline=PIPELINE, status="failed", step_index=2, alternative=1, provider_id="turbotext",
        operation_id="style_transfer", attempt=7, step_attempt_base=5, step_started_at=at(15), finished_at=at(20),
        cost=0.3, error_code="upstream_rejected", error_message="turbotext refused the photo", **begun,
    )  # fmt: skip
    await record(c, failed, REFRAME, "succeeded", 0, 1, output_media_id=out0)
    await record(c, failed, EDIT, "succeeded", 1, 9, cost=0.3, output_media_id=out1)
    await record(c, failed, STYLE, "failed", 9, 15, attempts=3, **GEMINI_503)

    # 5. The optional step failed for good and was skipped; the last step stores its image.
    skipped = await new_job(c)
    await shape(
        c, skipped, pipeline=WITH_OPTIONAL, status="running", step_index=2, provider_id="local",
        operation_id="resize", attempt=3, step_attempt_base=2, step_started_at=at(6), phase="uploading_image", **begun,
    )  # fmt: skip
    await record(c, skipped, REFRAME, "succeeded", 0, 1, output_media_id=out0)
    await record(c, skipped, UPSCALE, "skipped", 1, 6, error_code="upstream_timeout", error_message="fal too slow")

    # 6. Succeeded: the last step cost what the job's cost has beyond its finished steps'.
    succeeded = await new_job(c)
    result = await result_ref(c)
    await shape(
        c, succeeded, pipeline=PIPELINE, status="succeeded", step_index=2, provider_id="gemini",
        operation_id="style_transfer", attempt=3, step_attempt_base=2, step_started_at=at(10), finished_at=at(12.5),
        cost=0.55, result_media_id=result.id, **begun,
    )  # fmt: skip
    await record(c, succeeded, REFRAME, "succeeded", 0, 1, cost=0.1, output_media_id=out0)
    await record(c, succeeded, EDIT, "succeeded", 1, 10, cost=0.2, output_media_id=out1)

    # 7. A job from before pipelines (`pipeline = {}`, no step clock): one step, the job's own columns and clock.
    legacy = await new_job(c)
    await finish(c, legacy)  # claimed and completed (cost 0.25) here
    await shape(c, legacy, step_started_at=None, started_at=at(0), finished_at=at(0.75))

    def view(steps: list[dict[str, Any]], index: int, phase: str, progress: float, **more: Any) -> dict[str, Any]:
        count = 1 if steps[0]["provider_id"] == "sleepy" else 3
        return (
            {"steps": steps, "step_index": index, "step_count": count, "phase": phase, "progress": progress}
            | {"failed_step": None}
            | more
        )

    expected: dict[uuid.UUID, dict[str, Any]] = {
        queued.id: view(
            [entry(REFRAME, status="queued", phase="queued"), entry(EDIT), entry(STYLE)], 0, "queued", 0.0
        ),
        running.id: view(
            [
                await done(c, REFRAME, "succeeded", 0, 1.25, cost=0.1, output_media_id=out0),
                await done(c, EDIT, "failed", 2, 5, attempts=2, cost=0.05, error=GEMINI_503_ERROR),
                entry(EDIT_ALT, status="running", phase="processing_change_image", attempts=1,
                      started_at=await iso(c, at(5)), cost=0.0),
                entry(STYLE),
            ],
            1, "processing_change_image", 0.433,
        ),
        waiting.id: view(
            [
                await done(c, REFRAME, "succeeded", 0, 2, output_media_id=out0),
                # no cost known: the job has none
                entry(EDIT, status="waiting_provider", phase="waiting_provider", attempts=1,
                      started_at=await iso(c, at(3))),
                entry(STYLE),
            ],
            1, "waiting_provider", 0.5,
        ),
        failed.id: view(
            [
                await done(c, REFRAME, "succeeded", 0, 1, output_media_id=out0),
                await done(c, EDIT, "succeeded", 1, 9, cost=0.3, output_media_id=out1),
                await done(c, STYLE, "failed", 9, 15, attempts=3, error=GEMINI_503_ERROR),
                await done(c, STYLE_ALT, "failed", 15, 20, attempts=2, cost=0.0,
                           error={"code": "upstream_rejected", "message": "turbotext refused the photo"}),
            ],
            2, "failed", 0.667,
            failed_step={"index": 2, "alternative": 1, "provider_id": "turbotext", "operation_id": "style_transfer"},
        ),
        skipped.id: view(
            [
                await done(c, REFRAME, "succeeded", 0, 1, output_media_id=out0),
                await done(c, UPSCALE, "skipped", 1, 6, error={"code": "upstream_timeout", "message": "fal too slow"}),
                entry(RESIZE, status="running", phase="uploading_image", attempts=1, started_at=await iso(c, at(6))),
            ],
            2, "uploading_image", 0.967,
        ),
        succeeded.id: view(
            [
                await done(c, REFRAME, "succeeded", 0, 1, cost=0.1, output_media_id=out0),
                await done(c, EDIT, "succeeded", 1, 10, cost=0.2, output_media_id=out1),
                await done(c, STYLE, "succeeded", 10, 12.5, cost=0.25, output_media_id=str(result.id)),
            ],
            2, "succeeded", 1.0,
        ),
        legacy.id: view(
            [await done(c, (0, 0, "sleepy", "echo"), "succeeded", 0, 0.75, cost=0.25,
                        output_media_id=str(await legacy_result(c, legacy)))],
            0, "succeeded", 1.0,
        ),
    }  # fmt: skip

    for job_id, shown in expected.items():
        assert pipeline_view(await detail(client, token, job_id)) == shown, job_id
    # The job-level fields are as before: the job's own provider is the step (alternative) it is at.
    body = await detail(client, token, failed.id)
    assert (body["provider_id"], body["operation_id"], body["attempt"], body["cost"]) == (
        "turbotext",
        "style_transfer",
        7,
        0.3,
    )
    assert body["error"] == {"code": "upstream_rejected", "message": "turbotext refused the photo"}

    # The list shows the same for each of its rows, and a page aggregates only its own rows' steps.
    listed = (await client.get("/api/jobs?page_size=100", headers=auth(token))).json()
    assert {j["id"]: pipeline_view(j) for j in listed["data"]} == {str(k): v for k, v in expected.items()}
    page = (await client.get("/api/jobs?page_size=2&page=2", headers=auth(token))).json()
    newest_first = [str(j.id) for j in (legacy, succeeded, skipped, failed, waiting, running, queued)]
    assert [j["id"] for j in page["data"]] == newest_first[2:4]
    assert [pipeline_view(j) for j in page["data"]] == [expected[skipped.id], expected[failed.id]]
    only_failed = (await client.get("/api/jobs?status=failed", headers=auth(token))).json()["data"]
    assert [(j["id"], j["failed_step"]) for j in only_failed] == [(str(failed.id), expected[failed.id]["failed_step"])]


async def legacy_result(c: Container, job: JobRecord) -> uuid.UUID:
    async with c.engine.connect() as conn:
        value: uuid.UUID = (
            await conn.execute(text("SELECT result_media_id FROM jobs WHERE id = :id"), {"id": job.id})
        ).scalar_one()
    return value


async def test_another_operators_job_with_steps_is_not_found(
    client: httpx.AsyncClient, container: Container, token: str
) -> None:
    theirs = await new_job(container, slot_id="slot-041")  # igor's slot
    await shape(container, theirs, pipeline=PIPELINE, status="failed", step_index=2, finished_at=at(1))
    await record(container, theirs, REFRAME, "succeeded", 0, 1)
    for path in ("", "/events"):
        r = await client.get(f"/api/jobs/{theirs.id}{path}", headers=auth(token))
        assert (r.status_code, r.json()["error"]["code"]) == (404, "job_not_found"), path
    assert (await client.get("/api/jobs", headers=auth(token))).json()["meta"]["total"] == 0
    igor = await operator_token(client, container.settings.credentials_path, "igor")
    mine = await detail(client, igor, theirs.id)
    assert (mine["step_count"], mine["failed_step"]["index"], [s["status"] for s in mine["steps"]]) == (
        3,
        2,
        ["succeeded", "failed"],
    )


# ---- the event stream --------------------------------------------------------------------------------------


@pytest.fixture
async def live(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    """Over a real socket: the in-process transport hands a stream over only once it ended."""
    async with serving(emulator) as port, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        yield http


async def test_the_stream_sends_an_event_when_the_job_moves_to_its_next_step(
    live: httpx.AsyncClient, container: Container, settings: Settings
) -> None:
    c = container
    token = await operator_token(live, settings.credentials_path)
    job = await new_job(c)
    two_steps = {"steps": PIPELINE["steps"][:2], "finishing": {}, "max_attempts": 3}
    await shape(
        c, job, pipeline=two_steps, status="running", attempt=1, provider_id="local", operation_id="reframe",
        started_at=at(0), step_started_at=at(0), lease_expires_at=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    # Each change is made once the event before it arrived: every one of them is seen, in order.
    changes = [
        {"phase": "uploading_image"},  # same status and attempt: only the phase changes
        {"status": "queued", "step_index": 1, "step_attempt_base": 1, "phase": None, "step_started_at": None,
         "provider_id": "gemini", "operation_id": "change_image"},  # moved on to step 1
        {"status": "running", "attempt": 2},
        {"alternative": 1, "provider_id": "turbotext"},  # the alternative took over (same status here)
        {"status": "succeeded", "finished_at": datetime.now(UTC)},
    ]  # fmt: skip
    seen: list[tuple[str, dict[str, Any]]] = []
    async with live.stream("GET", f"/api/jobs/{job.id}/events", headers=auth(token)) as r:
        assert r.status_code == 200
        async for event, data, _ in _events(r):
            seen.append((event, data))
            if event == "status" and changes:
                await shape(c, job, **changes.pop(0))
    summary = [
        (e, d.get("status"), d.get("step_index"), d.get("alternative"), d.get("phase"), d.get("progress"))
        for e, d in seen
    ]
    assert summary == [
        ("status", "running", 0, 0, "processing_reframe", 0.15),
        ("status", "running", 0, 0, "uploading_image", 0.45),
        ("status", "queued", 1, 0, "queued", 0.5),
        ("status", "running", 1, 0, "processing_change_image", 0.65),
        ("status", "running", 1, 1, "processing_change_image", 0.65),
        ("status", "succeeded", 1, 1, "succeeded", 1.0),
        ("end", "succeeded", None, None, None, None),
    ]
    assert all(d["step_count"] == 2 for e, d in seen if e == "status")
