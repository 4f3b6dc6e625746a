"""Parked jobs completed by a provider callback: the booth is answered, forged tokens change nothing,
duplicate deliveries complete nothing twice, and a callback that never comes fails the job."""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.jobs.callbacks import CallbackQueue
from boothbridge.settings import Settings
from tests.fakes.sleepy import SleepyProvider
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # A public address is what turns webhooks on.
    return {"public_base_url": "https://booth.example.test", "t_sync_response": 10.0}


async def _parked_job(client: httpx.AsyncClient, settings: Settings, container: Container) -> tuple[Any, str, str]:
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(client, token, "slot-001", "sleepy", "echo", {"park": True})
    assert r.status_code == 200, r.text
    booth = asyncio.create_task(
        post_photo(client, "slot-001", jpeg(320, 240), credentials(settings.credentials_path)["ingest_password"])
    )
    for _ in range(200):
        async with container.engine.connect() as conn:
            row = (await conn.execute(text("SELECT id, status, provider_ref FROM jobs"))).one_or_none()
        if row is not None and row.status == "waiting_provider":
            break
        await asyncio.sleep(0.02)
    assert row is not None and row.status == "waiting_provider"
    assert row.provider_ref == f"sleepy-{row.id}"
    url = SleepyProvider.webhook_urls[str(row.id)]
    assert url is not None and url.startswith("https://booth.example.test/webhooks/sleepy/")
    return booth, str(row.id), urlsplit(url).path


async def test_callback_completes_the_parked_job_and_answers_the_booth(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    booth, job_id, path = await _parked_job(client, settings, container)
    result = jpeg(100, 100, color=(10, 200, 10))
    payload = {"image_b64": base64.b64encode(result).decode(), "mime": "image/jpeg"}

    r = await client.post(path, json=payload)
    assert r.status_code == 200, r.text
    assert r.json() == {"job_id": job_id, "status": "completed"}
    answer = await asyncio.wait_for(booth, 5)
    assert answer.status_code == 200 and answer.content == result

    again = await client.post(path, json=payload)  # the provider retries its delivery
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    async with container.engine.connect() as conn:
        results = (await conn.execute(text("SELECT count(*) FROM media_objects WHERE kind = 'result'"))).scalar_one()
    assert results == 1


async def test_forged_and_foreign_tokens_change_nothing(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    booth, job_id, path = await _parked_job(client, settings, container)
    good_token = path.rsplit("/", 1)[1]
    payload = {"image_b64": base64.b64encode(jpeg(10, 10)).decode(), "mime": "image/jpeg"}
    for bad in (
        f"/webhooks/sleepy/{job_id}.not-the-secret",
        f"/webhooks/sleepy/{job_id}",
        "/webhooks/sleepy/garbage",
        f"/webhooks/local/{good_token}",  # the right secret presented for another provider
    ):
        r = await client.post(bad, json=payload)
        assert r.status_code == 404, (bad, r.text)
        assert r.json()["error"]["code"] == "unknown_callback"
    async with container.engine.connect() as conn:
        status = (await conn.execute(text("SELECT status FROM jobs WHERE id = :id"), {"id": job_id})).scalar_one()
    assert status == "waiting_provider"
    bad_body = await client.post(path, content=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert bad_body.status_code == 400
    booth.cancel()


async def test_a_failure_report_fails_the_job_with_502(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    booth, job_id, path = await _parked_job(client, settings, container)
    r = await client.post(path, json={"error": "face not found"})
    assert r.json() == {"job_id": job_id, "status": "failed"}
    answer = await asyncio.wait_for(booth, 5)
    assert answer.status_code == 502
    assert answer.json()["error"]["details"]["reason"] == "upstream_rejected"


async def test_a_callback_that_never_comes_fails_the_job(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    booth, job_id, _ = await _parked_job(client, settings, container)
    async with container.engine.begin() as conn:  # the wait the provider was given has run out
        await conn.execute(text("UPDATE jobs SET lease_expires_at = now() - interval '1 second'"))
    assert await CallbackQueue(container.pool).fail_abandoned() == [uuid.UUID(job_id)]
    answer = await asyncio.wait_for(booth, 5)
    assert answer.status_code == 502
    assert answer.json()["error"]["details"]["reason"] == "provider_no_callback"


async def test_without_a_public_address_no_webhook_is_offered(
    client: httpx.AsyncClient, settings: Settings, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert container.runner.links is not None
    monkeypatch.setattr(container.runner.links, "webhooks", False)
    token = await operator_token(client, settings.credentials_path)
    await configure_slot(client, token, "slot-001", "sleepy", "echo", {"park": True})
    r = await post_photo(client, "slot-001", jpeg(64, 64), credentials(settings.credentials_path)["ingest_password"])
    assert r.status_code == 502
    assert r.json()["error"]["details"]["reason"] == "webhook_unavailable"
