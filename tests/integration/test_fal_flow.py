"""fal end to end: the product on a real port (real PostgreSQL, S3 on moto), the fal fake on another, signing its
webhook deliveries with its own key (its JWKS is FAL_JWKS_URL).

- a booth slot `fal remove_background` -> `local frame` -> finishing answers a DSLR-shaped post, the fal result
  delivered by a signed webhook;
- forged, unsigned, stale and replayed deliveries are refused (401 / 409) and change nothing;
- a webhook that never comes: the cleanup puts the job back and its next attempt polls the request (one submit);
- an operator's cancel of a job waiting at fal calls fal's cancel URL.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.jobs.callbacks import CallbackQueue
from boothbridge.providers.fal.adapter import FalProvider
from local.app import Emulator
from local.fakes.fal_server import FakeFal
from tests.support.booth import credentials, jpeg, operator_token, post_photo
from tests.support.live_server import serving

KEY = "fal-flow-key"


@pytest.fixture
def fal() -> Iterator[FakeFal]:
    fake = FakeFal((KEY,), rounds=1, webhook_delay_sec=0.1).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def settings_overrides(fal: FakeFal, app_socket: socket.socket) -> dict[str, Any]:
    return {
        "public_base_url": f"http://127.0.0.1:{app_socket.getsockname()[1]}",
        "fal_key": KEY,
        "fal_queue_url": fal.url,
        "fal_jwks_url": fal.jwks_url,
        "t_sync_response": 10.0,
        "max_attempts": 3,
        "retry_base_sec": 0.05,
        "retry_max_sec": 0.2,
    }


@pytest.fixture
async def live(emulator: Emulator, container: Container, app_socket: socket.socket) -> AsyncIterator[httpx.AsyncClient]:
    provider = container.providers["fal"]
    assert isinstance(provider, FalProvider)
    provider.poll_interval_sec = 0.05
    async with serving(emulator, app_socket), httpx.AsyncClient(base_url=container.settings.base_url, timeout=30) as h:
        yield h


async def _token(http: httpx.AsyncClient, container: Container) -> str:
    return await operator_token(http, container.settings.credentials_path)


def _password(container: Container) -> str:
    return str(credentials(container.settings.credentials_path)["ingest_password"])


async def _slot(http: httpx.AsyncClient, token: str, **body: Any) -> None:
    r = await http.put(
        "/api/slots/slot-001", json={"name": "fal", **body}, headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200, r.text


async def _job(container: Container, job_id: str) -> Any:
    async with container.engine.connect() as conn:
        query = "SELECT status, attempt, provider_ref, error_code, result_media_id FROM jobs WHERE id = :id"
        return (await conn.execute(text(query), {"id": job_id})).one()


def _one_step(operation: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"provider_id": "fal", "operation_id": operation, "settings_json": settings}


async def test_a_booth_slot_fal_remove_background_then_a_local_frame_then_finishing(
    live: httpx.AsyncClient, container: Container, fal: FakeFal
) -> None:
    token = await _token(live, container)
    r = await live.post(
        "/api/media/register",
        files={"file": ("template.png", _template(), "image/png")},
        data={"purpose": "template"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    steps = [
        {**_one_step("remove_background", {}), "alternatives": [], "optional": False},
        {
            "provider_id": "local",
            "operation_id": "frame",
            "alternatives": [],
            "optional": False,
            "settings_json": {"template_media_id": r.json()["id"], "x": 40, "y": 30, "scale": 0.5},
        },
    ]
    await _slot(live, token, steps=steps, finishing={"width": 300, "height": 200, "fit": "fill", "format": "jpeg"})

    r = await post_photo(live, "slot-001", jpeg(400, 300), _password(container))

    assert r.status_code == 200, r.text
    image = Image.open(io.BytesIO(r.content))
    assert (image.format, image.size) == ("JPEG", (300, 200))
    [submit] = fal.submits()
    assert submit.path == "/fal-ai/birefnet"
    assert submit.body["image_url"].startswith(f"{container.settings.base_url}/public/media/")  # a public link
    [(status, answer)] = fal.deliveries
    assert status == 200 and answer["status"] in ("moved", "completed")
    assert not [c for c in fal.calls if c.path.endswith("/status")]  # the webhook brought it, nobody polled


def _template() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (600, 400), (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


async def _parked_job(live: httpx.AsyncClient, container: Container, fal: FakeFal) -> tuple[str, str]:
    """A booth post whose fal job parks and gets no webhook; (job id, the webhook URL fal was given)."""
    fal.webhook = "never"
    token = await _token(live, container)
    await _slot(live, token, provider_id="fal", operation_id="upscale", settings_json={"scale": 2})
    r = await post_photo(live, "slot-001", jpeg(100, 80), _password(container))
    job_id = r.headers["x-job-id"]
    assert (await _job(container, job_id)).status == "waiting_provider"
    [submit] = fal.submits()
    return job_id, httpx.URL(submit.path).params.get("fal_webhook") or _webhook_of(fal)


def _webhook_of(fal: FakeFal) -> str:
    entry = next(iter(fal._entries.values()))
    assert entry.webhook is not None
    return entry.webhook


async def test_forged_unsigned_stale_and_replayed_deliveries_change_nothing(
    live: httpx.AsyncClient, container: Container, fal: FakeFal
) -> None:
    job_id, hook = await _parked_job(live, container, fal)
    request_id = str((await _job(container, job_id)).provider_ref)
    raw = json.dumps(fal.webhook_body(request_id)).encode()
    plain = {"Content-Type": "application/json"}
    forged = {**plain, **fal.sign(request_id, raw), "X-Fal-Webhook-Signature": "ab" * 64}
    stale = {**plain, **fal.sign(request_id, raw, at=int(time.time()) - 3600)}
    other_body = json.dumps({**fal.webhook_body(request_id), "payload": {"image": {"url": "http://evil/x.png"}}})
    for headers, body in [
        (plain, raw),
        (forged, raw),
        (stale, raw),
        ({**plain, **fal.sign(request_id, raw)}, other_body.encode()),
    ]:
        r = await live.post(hook, content=body, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "callback_unverified", r.text
        assert (await _job(container, job_id)).status == "waiting_provider"

    signed = {**plain, **fal.sign(request_id, raw)}
    r = await live.post(hook, content=raw, headers=signed)
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text
    done = await _job(container, job_id)
    assert done.status == "succeeded"
    r = await live.post(hook, content=raw, headers=signed)  # the same valid delivery again: a replay
    assert r.status_code == 409 and r.json()["error"]["code"] == "callback_replayed"
    assert await _job(container, job_id) == done


async def test_a_lost_webhook_is_polled_by_the_next_attempt_without_a_second_submit(
    live: httpx.AsyncClient, container: Container, fal: FakeFal
) -> None:
    job_id, _ = await _parked_job(live, container, fal)
    async with container.engine.begin() as conn:  # the park's wait runs out
        await conn.execute(text("UPDATE jobs SET lease_expires_at = now() WHERE id = :id"), {"id": job_id})
    assert await CallbackQueue(container.pool).fail_abandoned() == []  # requeued, not failed
    for _ in range(200):
        row = await _job(container, job_id)
        if row.status in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.05)
    assert (row.status, row.attempt) == ("succeeded", 2), row
    assert len(fal.submits()) == 1
    assert [c for c in fal.calls if c.path.endswith("/status")]  # it was polled


async def test_an_operators_cancel_calls_fals_cancel_url(
    live: httpx.AsyncClient, container: Container, fal: FakeFal
) -> None:
    job_id, _ = await _parked_job(live, container, fal)
    request_id = str((await _job(container, job_id)).provider_ref)
    token = await _token(live, container)
    r = await live.post(f"/api/jobs/{job_id}/cancel", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 202, r.text
    assert (await _job(container, job_id)).status == "cancelled"
    assert fal.cancels == [request_id]
    assert any(c.method == "PUT" and c.path == f"/fal-ai/esrgan/requests/{request_id}/cancel" for c in fal.calls)
