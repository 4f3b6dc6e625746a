"""fal follow-ups (issue 15): a paid fal request is submitted once per job step, and a cancel reaches fal.

The product on a real port (real PostgreSQL, S3 on moto), the fal fake on another (`local.fakes.fal_server`):
- a result download that fails is retried by resuming the same fal request, never by submitting again: on the
  webhook path (the delivery's download fails, the job is requeued) and on the polling path (the attempt fails);
- an operator's cancel of a RUNNING fal job reaches fal's cancel URL: while the attempt polls fal, and when the
  cancel comes while the submit is still in flight (the attempt asks fal itself once it learns the request id).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.providers.fal.adapter import FalProvider
from local.app import Emulator
from local.fakes.fal_server import FakeFal
from tests.support.booth import credentials, jpeg, operator_token, post_photo
from tests.support.live_server import serving

KEY = "fal-followups-key"
WEBHOOKS = {"webhooks": True}
POLLING = {"webhooks": False}


@pytest.fixture
def fal() -> Iterator[FakeFal]:
    fake = FakeFal((KEY,), rounds=1, webhook_delay_sec=0.1).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest, fal: FakeFal, app_socket: socket.socket) -> dict[str, Any]:
    """`webhooks` (indirect parameter, default True): whether the product has a public address fal calls back."""
    webhooks = getattr(request, "param", WEBHOOKS)["webhooks"]
    public = {"public_base_url": f"http://127.0.0.1:{app_socket.getsockname()[1]}"} if webhooks else {}
    return {
        **public,
        "fal_key": KEY,
        "fal_queue_url": fal.url,
        "fal_jwks_url": fal.jwks_url,
        "t_sync_response": 30.0,
        "max_attempts": 3,
        "retry_base_sec": 0.05,
        "retry_max_sec": 0.2,
        "heartbeat_sec": 5.0,
    }


@pytest.fixture
async def live(emulator: Emulator, container: Container, app_socket: socket.socket) -> AsyncIterator[httpx.AsyncClient]:
    provider = container.providers["fal"]
    assert isinstance(provider, FalProvider)
    provider.poll_interval_sec = 0.05
    # One download try per fetch: a file that is not served fails that fetch at once (retryably).
    provider.fetcher.max_sec, provider.fetcher.min_try_sec, provider.fetcher.backoff_sec = 0.3, 0.2, 0.5
    base = f"http://127.0.0.1:{app_socket.getsockname()[1]}"  # without a public address too
    async with serving(emulator, app_socket), httpx.AsyncClient(base_url=base, timeout=40) as h:
        yield h


async def _job(container: Container, job_id: str) -> Any:
    async with container.engine.connect() as conn:
        query = "SELECT status, attempt, provider_ref, error_code, attempt_errors FROM jobs WHERE id = :id"
        return (await conn.execute(text(query), {"id": job_id})).one()


async def _upscale_slot(live: httpx.AsyncClient, container: Container) -> str:
    token = await operator_token(live, container.settings.credentials_path)
    body = {"name": "fal", "provider_id": "fal", "operation_id": "upscale", "settings_json": {"scale": 2}}
    r = await live.put("/api/slots/slot-001", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return token


def _password(container: Container) -> str:
    return str(credentials(container.settings.credentials_path)["ingest_password"])


async def _until(predicate: Any, what: str) -> None:
    for _ in range(400):
        if await predicate():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never happened: {what}")


# ---- a failed result download resumes the request ------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [WEBHOOKS, POLLING], indirect=True, ids=["webhook", "polling"])
async def test_a_failed_result_download_resumes_the_same_request_without_a_second_submit(
    live: httpx.AsyncClient, container: Container, fal: FakeFal, settings_overrides: dict[str, Any]
) -> None:
    fal.file_faults = 1  # the result file answers 404 once: the first download fails, the next one succeeds
    await _upscale_slot(live, container)

    r = await post_photo(live, "slot-001", jpeg(100, 80), _password(container))

    assert r.status_code == 200, r.text
    job = await _job(container, r.headers["x-job-id"])
    assert (job.status, job.attempt) == ("succeeded", 2), job
    assert [e["code"] for e in job.attempt_errors] == ["result_download_failed"]
    assert len(fal.submits()) == 1  # one paid generation
    assert [status for _, status in fal.file_gets] == [404, 200]  # the same file, fetched again
    if "public_base_url" in settings_overrides:
        [(status, answer)] = fal.deliveries
        assert status == 200 and answer["status"] == "requeued"


# ---- a cancel of a running job reaches fal --------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [POLLING], indirect=True)
async def test_cancelling_a_job_whose_attempt_polls_fal_calls_fals_cancel_url(
    live: httpx.AsyncClient, container: Container, fal: FakeFal
) -> None:
    fal.rounds = 10_000  # the request stays in progress: the attempt keeps polling
    token = await _upscale_slot(live, container)
    post = asyncio.create_task(post_photo(live, "slot-001", jpeg(100, 80), _password(container)))
    await _until(lambda: _polled(fal), "fal polled")
    [submit] = fal.submits()
    async with container.engine.connect() as conn:
        job_id = str((await conn.execute(text("SELECT id FROM jobs WHERE status = 'running'"))).scalar_one())
    request_id = str((await _job(container, job_id)).provider_ref)

    r = await live.post(f"/api/jobs/{job_id}/cancel", headers={"Authorization": f"Bearer {token}"})

    assert r.status_code == 202, r.text
    assert fal.cancels == [request_id]
    assert any(c.method == "PUT" and c.path == f"/fal-ai/esrgan/requests/{request_id}/cancel" for c in fal.calls)
    answer = await post
    assert answer.status_code == 502 and answer.json()["error"]["code"] == "job_cancelled", answer.text
    assert (await _job(container, job_id)).status == "cancelled"
    assert submit.path == "/fal-ai/esrgan"


async def _polled(fal: FakeFal) -> bool:
    return any(c.path.endswith("/status") for c in list(fal.calls))


@pytest.mark.parametrize("settings_overrides", [POLLING], indirect=True)
async def test_a_cancel_during_the_submit_is_passed_on_to_fal_by_the_attempt(
    live: httpx.AsyncClient, container: Container, fal: FakeFal
) -> None:
    fal.submit_delay_sec = 1.0  # fal takes its time to accept the request
    fal.rounds = 10_000
    token = await _upscale_slot(live, container)
    post = asyncio.create_task(post_photo(live, "slot-001", jpeg(100, 80), _password(container)))
    await _until(lambda: _submitting(fal), "the submit reached fal")
    async with container.engine.connect() as conn:
        row = (await conn.execute(text("SELECT id, provider_ref FROM jobs WHERE status = 'running'"))).one()
    assert row.provider_ref is None  # not accepted yet: nothing the cancel could pass on

    r = await live.post(f"/api/jobs/{row.id}/cancel", headers={"Authorization": f"Bearer {token}"})

    assert r.status_code == 202, r.text
    assert fal.cancels == []
    await _until(lambda: _cancelled_at_fal(fal), "the attempt asked fal to cancel")
    [entry] = fal._entries.values()
    assert fal.cancels == [entry.id] and entry.cancelled
    assert (await post).status_code == 502
    assert (await _job(container, str(row.id))).status == "cancelled"


async def _submitting(fal: FakeFal) -> bool:
    return bool(fal.submits())


async def _cancelled_at_fal(fal: FakeFal) -> bool:
    return bool(fal.cancels)
