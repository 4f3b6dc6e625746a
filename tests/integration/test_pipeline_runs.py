"""Jobs that are pipelines, run by the real runner on real PostgreSQL and S3 (moto): each step's output is the next
step's input, alternatives take over a step that fails for good, optional steps are skipped, the finishing stage
makes the final image, a taken-over job resumes at its step (the earlier step's provider is not called again), and
a provider's webhook for step 1 of 2 moves the job on to step 2."""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.errors import AppError
from boothbridge.jobs.model import NewJob
from boothbridge.jobs.worker_loop import run_job_by_id
from tests.fakes.sleepy import SleepyProvider
from tests.support.booth import jpeg

PHOTO = jpeg(640, 480)


def step(provider: str, operation: str, settings: dict[str, Any], *alternatives: Any, optional: bool = False) -> Any:
    return {
        "provider_id": provider,
        "operation_id": operation,
        "settings_json": settings,
        "alternatives": [{"provider_id": p, "operation_id": o, "settings_json": s} for p, o, s in alternatives],
        "optional": optional,
    }


async def enqueue(c: Container, steps: list[Any], finishing: dict[str, Any] | None = None, seconds: int = 60) -> Any:
    source = await c.media.write_bytes("source", PHOTO, "image/jpeg")
    now = datetime.now(UTC)
    first = steps[0]
    new = NewJob(
        id=uuid.uuid4(),
        slot_id="slot-001",
        provider_id=first["provider_id"],
        operation_id=first["operation_id"],
        settings_json=first["settings_json"],
        source_media_id=source.id,
        source_sha256=hashlib.sha256(uuid.uuid4().bytes).hexdigest(),
        max_attempts=2,
        deadline_at=now + timedelta(seconds=seconds),
        request_meta={},
        pipeline={"steps": steps, "finishing": finishing or {}, "max_attempts": 2},
    )
    job, created = await c.queue.enqueue(new, source, now + timedelta(minutes=10))
    assert created and job is not None
    return job


async def run(c: Container, job_id: uuid.UUID) -> str:
    return await run_job_by_id(c.queue, c.runner, job_id, "test-worker")


async def job_row(c: Container, job_id: uuid.UUID) -> Any:
    async with c.engine.connect() as conn:
        return (await conn.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": job_id})).one()


async def step_rows(c: Container, job_id: uuid.UUID) -> list[Any]:
    async with c.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM job_steps WHERE job_id = :id ORDER BY step_index, alternative"), {"id": job_id}
        )
        return list(rows)


async def result_image(c: Container, job_id: uuid.UUID) -> tuple[Image.Image, bytes, str]:
    row = await job_row(c, job_id)
    assert row.status == "succeeded", (row.status, row.error_code, row.error_message)
    data, ref = await c.media.read(row.result_media_id)
    return Image.open(io.BytesIO(data)), data, ref.mime


async def test_three_steps_chain_their_images_and_the_finishing_stage_makes_the_result(container: Container) -> None:
    steps = [
        step("local", "reframe", {"aspect_ratio": "1:1"}),  # 640x480 -> 480x480
        step("sleepy", "echo", {}),  # paid: 0.01
        step("local", "resize", {"width": 240}),  # -> 240x240
    ]
    finishing = {"width": 300, "height": 200, "fit": "pad", "pad_color": "#ff0000", "format": "png"}
    job = await enqueue(container, steps, finishing)

    assert await run(container, job.id) == "succeeded"

    image, _, mime = await result_image(container, job.id)
    assert (image.size, mime) == ((300, 200), "image/png")
    assert image.convert("RGB").getpixel((0, 100)) == (255, 0, 0)  # the pad: the 240x240 image is centred
    row = await job_row(container, job.id)
    assert (row.step_index, row.alternative, row.attempt) == (2, 0, 3)
    assert float(row.cost) == pytest.approx(0.01)
    records = await step_rows(container, job.id)
    assert [(r.step_index, r.alternative, r.provider_id, r.status, r.attempts) for r in records] == [
        (0, 0, "local", "succeeded", 1),
        (1, 0, "sleepy", "succeeded", 1),
    ]
    assert float(records[1].cost) == pytest.approx(0.01)
    # each step's output is the next one's input: the sleepy step was given the 1:1 crop
    data, _ = await container.media.read(records[0].output_media_id)
    assert Image.open(io.BytesIO(data)).size == (480, 480)
    assert row.input_media_id == records[1].output_media_id
    assert len(SleepyProvider.calls) == 1


async def test_a_step_that_fails_for_good_is_taken_over_by_its_alternative(container: Container) -> None:
    steps = [
        step(
            "sleepy",
            "echo",
            {"fail_always": True},
            ("sleepy", "echo", {"fail_always": True}),
            ("local", "resize", {"width": 100}),
        )
    ]
    job = await enqueue(container, steps)

    assert await run(container, job.id) == "succeeded"

    image, _, _ = await result_image(container, job.id)
    assert image.size == (100, 75)
    row = await job_row(container, job.id)
    assert (row.step_index, row.alternative, row.provider_id, row.operation_id) == (0, 2, "local", "resize")
    records = await step_rows(container, job.id)
    assert [(r.alternative, r.status, r.error_code) for r in records] == [
        (0, "failed", "upstream_rejected"),
        (1, "failed", "upstream_rejected"),
    ]


async def test_every_alternative_down_fails_the_job_where_it_stopped(container: Container) -> None:
    steps = [
        step("local", "reframe", {"aspect_ratio": "1:1"}),
        step("sleepy", "echo", {"fail_always": True}, ("sleepy", "echo", {"fail_always": True})),
    ]
    job = await enqueue(container, steps)

    assert await run(container, job.id) == "failed"

    row = await job_row(container, job.id)
    assert (row.status, row.step_index, row.alternative, row.error_code) == ("failed", 1, 1, "upstream_rejected")
    records = await step_rows(container, job.id)
    assert [(r.step_index, r.alternative, r.status) for r in records] == [(0, 0, "succeeded"), (1, 0, "failed")]


async def test_retries_stay_within_a_step_and_count_per_step(container: Container) -> None:
    # step 1 fails once retryably (attempt 2 of the job is its first), then succeeds on its second attempt
    steps = [step("local", "reframe", {"aspect_ratio": "1:1"}), step("sleepy", "echo", {"fail_first": 2})]
    job = await enqueue(container, steps)

    assert await run(container, job.id) == "succeeded"

    row = await job_row(container, job.id)
    assert (row.attempt, row.step_attempt_base, row.max_attempts) == (3, 1, 3)
    assert [a for _, a in SleepyProvider.calls] == [2, 3]


async def test_an_optional_step_that_fails_is_skipped(container: Container) -> None:
    steps = [
        step("local", "reframe", {"aspect_ratio": "1:1"}),
        step("sleepy", "echo", {"fail_always": True}, optional=True),
        step("local", "resize", {"width": 120}),
    ]
    job = await enqueue(container, steps)

    assert await run(container, job.id) == "succeeded"

    image, _, _ = await result_image(container, job.id)
    assert image.size == (120, 120)  # the crop went on to the resize
    records = await step_rows(container, job.id)
    assert [(r.step_index, r.status, r.output_media_id is None) for r in records] == [
        (0, "succeeded", False),
        (1, "skipped", True),
    ]


async def test_an_optional_last_step_that_fails_ends_the_pipeline_with_its_input(container: Container) -> None:
    steps = [
        step("local", "reframe", {"aspect_ratio": "1:1"}),
        step("sleepy", "echo", {"fail_always": True}, optional=True),
    ]
    job = await enqueue(container, steps, {"width": 64, "height": 64, "fit": "fill"})

    assert await run(container, job.id) == "succeeded"

    image, _, _ = await result_image(container, job.id)
    assert image.size == (64, 64)


async def test_a_taken_over_job_resumes_at_its_step(container: Container) -> None:
    steps = [step("sleepy", "echo", {}), step("local", "resize", {"width": 200})]
    job = await enqueue(container, steps)
    # Step 0 runs and the job moves on; then a worker claims step 1 and dies (its lease simply runs out).
    [claimed] = await container.queue.claim("doomed", 1, only_id=job.id)
    assert (await container.runner.run(claimed)).status == "moved"
    container.queue.release(claimed)
    [dying] = await container.queue.claim("doomed", 1, only_id=job.id)
    container.queue.release(dying)
    assert (dying.step_index, dying.provider_id, dying.attempt) == (1, "local", 2)
    async with container.engine.begin() as conn:
        await conn.execute(
            text("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = :id"), {"id": job.id}
        )

    assert await run(container, job.id) == "succeeded"

    image, _, _ = await result_image(container, job.id)
    assert image.size == (200, 150)
    assert len(SleepyProvider.calls) == 1  # step 0's paid provider was called once
    row = await job_row(container, job.id)
    assert (row.attempt, row.lease_expiries) == (3, 1)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"public_base_url": "https://booth.example.test"}  # turns webhooks on


async def test_a_webhook_for_step_one_of_two_moves_the_job_to_step_two(container: Container) -> None:
    steps = [step("sleepy", "echo", {"park": True}), step("local", "resize", {"width": 50})]
    job = await enqueue(container, steps)
    assert await run(container, job.id) == "waiting_provider"
    url = SleepyProvider.webhook_urls[str(job.id)]
    assert url is not None
    token = url.rsplit("/", 1)[1]
    delivered = jpeg(400, 200, color=(0, 200, 0))
    payload = {"image_b64": base64.b64encode(delivered).decode(), "mime": "image/jpeg"}

    answer = await container.webhooks.deliver("sleepy", token, payload)
    assert answer.outcome == "moved"
    # A repeated delivery moves nothing twice: the step's secret was spent with the move.
    with pytest.raises(AppError) as refused:
        await container.webhooks.deliver("sleepy", token, payload)
    assert (refused.value.status, refused.value.code) == (404, "unknown_callback")

    assert await run(container, job.id) == "succeeded"
    image, _, _ = await result_image(container, job.id)
    assert image.size == (50, 25)  # step 2 resized what the callback delivered
    records = await step_rows(container, job.id)
    assert [(r.step_index, r.status) for r in records] == [(0, "succeeded")]
    assert float((await job_row(container, job.id)).cost) == pytest.approx(0.02)  # the callback's cost
