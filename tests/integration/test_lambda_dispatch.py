"""The AWS shape of the bridge: ingest wakes the worker with an asynchronous Lambda invoke (real aiobotocore
client against a fake Invoke API), the worker function runs the job, and the waiting booth gets the image."""

from __future__ import annotations

import asyncio
import io
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from boothbridge.jobs.dispatch import LambdaInvokeDispatcher
from boothbridge.settings import Settings
from tests.fakes.lambda_invoke import FakeLambda, fake_lambda
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo
from tests.support.lambda_env import invoke_worker, settings_env


@pytest.fixture
def lambda_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLambda]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with fake_lambda() as fake:
        yield fake


@pytest.fixture
def settings_overrides(lambda_api: FakeLambda) -> dict[str, Any]:
    return {
        "worker_dispatch": "lambda",
        "worker_function_name": "boothbridge-worker",
        "lambda_endpoint_url": lambda_api.url,
        "run_worker": False,
    }


async def test_ingest_invokes_the_worker_lambda_which_completes_the_job(
    client: httpx.AsyncClient, settings: Settings, lambda_api: FakeLambda, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await operator_token(client, settings.credentials_path)
    await configure_slot(client, token, "slot-001", "local", "reframe", {"aspect_ratio": "3:2"})
    booth = asyncio.create_task(
        post_photo(client, "slot-001", jpeg(600, 600), credentials(settings.credentials_path)["ingest_password"])
    )
    assert await asyncio.to_thread(lambda_api.event.wait, 10)
    (call,) = lambda_api.invocations
    assert call.function_name == "boothbridge-worker"
    assert call.invocation_type == "Event"
    assert call.authorization.startswith("AWS4-HMAC-SHA256 ")
    assert call.payload["reason"] == "ingest"

    # The Lambda service runs the worker function with that payload.
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    result = await asyncio.to_thread(invoke_worker, call.payload)
    assert result["status"] == "succeeded"

    response = await booth
    assert response.status_code == 200, response.text
    assert response.headers["x-job-id"] == call.payload["job_id"]
    assert Image.open(io.BytesIO(response.content)).size == (600, 400)


async def test_a_failed_invoke_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens on port 9: the wake-up fails and the job stays queued for the sweep, ingest goes on.
    dead = LambdaInvokeDispatcher("boothbridge-worker", region="eu-central-1", endpoint_url="http://127.0.0.1:9")
    await dead.open()
    job_id = uuid.uuid4()
    try:
        with caplog.at_level(logging.WARNING, logger="boothbridge.jobs.dispatch"):
            await dead.dispatch(job_id)
    finally:
        await dead.close()
    assert any(str(job_id) in r.getMessage() and "could not invoke" in r.getMessage() for r in caplog.records)
