"""`POST /api/slots/{id}/test`: an operator runs a slot on a test photo through the booth's pipeline; the job and
its log row are marked as a test and never matched with booth jobs of the same photo."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo

T_SYNC = 3.0


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"t_sync_response": T_SYNC}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def run_test(
    client: httpx.AsyncClient,
    token: str | None,
    slot_id: str,
    photo: bytes | None,
    *,
    content_type: str = "image/jpeg",
) -> httpx.Response:
    files = {"file": ("test.jpg", photo, content_type)} if photo is not None else None
    return await client.post(
        f"/api/slots/{slot_id}/test",
        files=files,
        data={"note": "operator test"} if files is None else None,
        headers=auth(token) if token else {},
    )


def error_code(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["code"])


async def job_row(container: Container, job_id: str) -> Any:
    async with container.engine.connect() as conn:
        return (
            await conn.execute(
                text("SELECT status, is_test, source_sha256, result_media_id FROM jobs WHERE id = :id"), {"id": job_id}
            )
        ).one()


async def log_rows(container: Container) -> list[Any]:
    async with container.engine.connect() as conn:
        return list(
            (
                await conn.execute(
                    text("SELECT job_id, status, http_status, is_test, error_code FROM processing_log ORDER BY id")
                )
            ).all()
        )


async def test_a_test_run_answers_a_link_to_the_result_and_is_never_matched_with_booth_jobs(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(client, token, "slot-001", "local", "reframe", {"aspect_ratio": "1:1"})
    assert r.status_code == 200, r.text
    photo = jpeg(1200, 800)

    r = await run_test(client, token, "slot-001", photo)

    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"job_id", "status", "processing_ms", "cost", "result_url", "result_mime", "steps"}
    [step] = body["steps"]  # one step: the slot's own call, its output the result (issue 14: steps shown)
    assert {k: step[k] for k in ("index", "alternative", "provider_id", "operation_id", "status", "error")} == {
        "index": 0,
        "alternative": 0,
        "provider_id": "local",
        "operation_id": "reframe",
        "status": "succeeded",
        "error": None,
    }
    assert step["image_url"] == body["result_url"] and isinstance(step["ms"], int)
    assert body["status"] == "succeeded" and body["result_mime"] == "image/jpeg"
    assert isinstance(body["processing_ms"], int) and body["processing_ms"] >= 0
    assert r.headers["x-job-id"] == body["job_id"]
    assert body["result_url"].startswith(f"{settings.base_url}/public/media/")
    served = await client.get(body["result_url"].removeprefix(settings.base_url))
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(served.content)).size == (800, 800)  # the slot's processing, not the photo

    test_job = await job_row(container, body["job_id"])
    assert test_job.status == "succeeded" and test_job.is_test is True
    assert body["result_url"].endswith(str(test_job.result_media_id))
    [logged] = await log_rows(container)
    assert (str(logged.job_id), logged.status, logged.http_status, logged.is_test) == (
        body["job_id"],
        "SUCCESS",
        200,
        True,
    )

    # A booth post of the same bytes is not answered from the test job: a job of its own runs.
    booth = await post_photo(client, "slot-001", photo, credentials(settings.credentials_path)["ingest_password"])
    assert booth.status_code == 200, booth.text
    assert booth.headers["x-job-id"] != body["job_id"]
    booth_job = await job_row(container, booth.headers["x-job-id"])
    assert booth_job.is_test is False and booth_job.source_sha256 == test_job.source_sha256
    # ... nor is a later test run answered from the booth job (or from the earlier test).
    again = await run_test(client, token, "slot-001", photo)
    assert again.status_code == 200, again.text
    assert again.json()["job_id"] not in {body["job_id"], booth.headers["x-job-id"]}

    rows = await log_rows(container)
    assert [(row.status, row.is_test) for row in rows] == [("SUCCESS", True), ("SUCCESS", False), ("SUCCESS", True)]
    async with container.engine.connect() as conn:
        counts = (
            await conn.execute(
                text("SELECT count(*) FILTER (WHERE is_test), count(*) FILTER (WHERE NOT is_test) FROM jobs")
            )
        ).one()
    assert tuple(counts) == (2, 1)


async def test_test_run_needs_no_ingest_password_but_a_token(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    await configure_slot(client, token, "slot-001", "local", "reframe", {"aspect_ratio": "1:1"})

    assert error_code(await run_test(client, None, "slot-001", jpeg()), 401) == "unauthorized"
    r = await client.post(
        "/api/slots/slot-001/test", files={"file": ("t.jpg", jpeg(), "image/jpeg")}, headers=auth("not-a-jwt")
    )
    assert error_code(r, 401) == "invalid_token"
    assert await log_rows(container) == []  # refused before anything ran


async def test_foreign_missing_and_unconfigured_slots(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    assert error_code(await run_test(client, token, "slot-041", jpeg()), 404) == "slot_not_found"  # another's
    assert error_code(await run_test(client, token, "slot-999", jpeg()), 404) == "slot_not_found"
    assert await log_rows(container) == []  # nothing ran for a slot that is not the operator's

    r = await run_test(client, token, "slot-002", jpeg())
    assert error_code(r, 409) == "slot_not_configured"
    [logged] = await log_rows(container)
    assert (logged.status, logged.http_status, logged.is_test) == ("ERROR", 409, True)


@pytest.mark.parametrize(
    ("photo", "content_type", "status", "code"),
    [
        (None, "image/jpeg", 400, "file_missing"),
        (b"", "image/jpeg", 400, "file_empty"),
        (b"plain text, not an image", "image/jpeg", 415, "unsupported_media_type"),
    ],
)
async def test_bad_files_get_the_uniform_error(
    client: httpx.AsyncClient,
    settings: Settings,
    container: Container,
    photo: bytes | None,
    content_type: str,
    status: int,
    code: str,
) -> None:
    token = await operator_token(client, settings.credentials_path)
    await configure_slot(client, token, "slot-001", "local", "reframe", {"aspect_ratio": "1:1"})
    assert error_code(await run_test(client, token, "slot-001", photo, content_type=content_type), status) == code
    [logged] = await log_rows(container)
    assert (logged.http_status, logged.error_code, logged.is_test) == (status, code, True)
    async with container.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM jobs"))).scalar_one() == 0


async def test_provider_failure_is_502_even_when_the_slot_falls_back_to_the_original(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(
        client, token, "slot-001", "sleepy", "echo", {"fail_always": True}, failure_policy="original"
    )
    assert r.status_code == 200, r.text

    r = await run_test(client, token, "slot-001", jpeg())

    assert error_code(r, 502) == "provider_failed"
    job_id = r.json()["error"]["details"]["job_id"]
    assert r.headers["x-job-id"] == job_id
    assert (await job_row(container, job_id)).is_test is True
    [logged] = await log_rows(container)
    assert (logged.status, logged.http_status, logged.is_test) == ("ERROR", 502, True)


async def test_timeout_is_504_with_the_job_id_and_the_job_goes_on(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    await configure_slot(client, token, "slot-001", "sleepy", "echo", {"delay_sec": T_SYNC + 1.0})

    r = await run_test(client, token, "slot-001", jpeg())

    assert error_code(r, 504) == "processing_timeout"
    job_id = r.json()["error"]["details"]["job_id"]
    assert r.headers["x-job-id"] == job_id
    for _ in range(100):
        if (await job_row(container, job_id)).status == "succeeded":
            break
        await asyncio.sleep(0.1)
    job = await job_row(container, job_id)
    assert (job.status, job.is_test) == ("succeeded", True)
    [logged] = await log_rows(container)
    assert (logged.status, logged.http_status, logged.is_test) == ("TIMEOUT", 504, True)


async def test_sleepy_success_reports_the_cost(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    await configure_slot(client, token, "slot-001", "sleepy", "echo", {})
    photo = jpeg(320, 240)
    r = await run_test(client, token, "slot-001", photo)
    assert r.status_code == 200, r.text
    assert r.json()["cost"] == pytest.approx(0.01)
    served = await client.get(r.json()["result_url"].removeprefix(settings.base_url))
    assert served.content == photo  # the echo provider's result


async def test_a_test_run_can_run_the_slot_pages_unsaved_configuration(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)  # slot-002 is still free (never saved)
    config = '{"provider_id": "local", "operation_id": "reframe", "settings_json": {"aspect_ratio": "16:9"}}'
    r = await client.post(
        "/api/slots/slot-002/test",
        files={"file": ("test.jpg", jpeg(800, 800), "image/jpeg")},
        data={"config": config},
        headers=auth(token),
    )
    assert r.status_code == 200, r.text
    result = await client.get(r.json()["result_url"])
    assert Image.open(io.BytesIO(result.content)).size == (800, 450)
    slot = (await client.get("/api/slots/slot-002", headers=auth(token))).json()
    assert slot["is_configured"] is False, "testing must not save the configuration"


@pytest.mark.parametrize(
    ("config", "status", "code"),
    [
        ("not json", 400, "validation_error"),
        ('{"provider_id": "local"}', 400, "validation_error"),
        ('{"provider_id": "nope", "operation_id": "reframe"}', 422, "unknown_provider"),
        (
            '{"provider_id": "local", "operation_id": "reframe", "settings_json": {"aspect_ratio": "5:1"}}',
            422,
            "invalid_settings",
        ),
        (
            '{"provider_id": "local", "operation_id": "frame", '
            '"settings_json": {"template_media_id": "00000000-0000-4000-8000-000000000000"}}',
            422,
            "media_not_found",
        ),
    ],
)
async def test_an_invalid_unsaved_configuration_is_refused_before_any_job(
    client: httpx.AsyncClient, settings: Settings, container: Container, config: str, status: int, code: str
) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await client.post(
        "/api/slots/slot-002/test",
        files={"file": ("test.jpg", jpeg(400, 300), "image/jpeg")},
        data={"config": config},
        headers=auth(token),
    )
    assert error_code(r, status) == code
    async with container.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM jobs"))).scalar() == 0
