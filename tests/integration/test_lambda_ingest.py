"""The ingest function called the way AWS calls it: a Lambda function-URL event through Mangum."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from pathlib import Path
from typing import Any

import httpx
from mangum import Mangum
from PIL import Image

from boothbridge.settings import Settings
from functions.ingest.app import create_app
from local.app import Emulator
from tests.support.booth import DSLR_FIELDS, configure_slot, credentials, jpeg, operator_token

EVENTS = Path(__file__).resolve().parents[1] / "events"
BOUNDARY = "------------090306000104030805010400"


def multipart_body(fields: dict[str, str], photo: bytes) -> bytes:
    parts = []
    for name, value in fields.items():
        parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="fileToUpload"; filename="IMG_0003.JPG"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
        + photo
        + b"\r\n"
    )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts)


class FakeLambdaContext:
    function_name = "boothbridge-ingest"
    aws_request_id = "9f1c2b7e-3a5d-4c8e-9b0a-1d2e3f405162"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def invoke_in_fresh_environment(settings: Settings, event: dict[str, Any]) -> dict[str, Any]:
    """A Lambda execution environment: its own thread and event loop, a cold container built on first use
    and released when the environment ends."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = create_app(settings)
    try:
        return Mangum(app, lifespan="off")(event, FakeLambdaContext())  # type: ignore[arg-type]
    finally:
        loop.run_until_complete(app.state.holder.close())
        asyncio.set_event_loop(None)
        loop.close()


async def test_function_url_event_returns_the_base64_image(
    client: httpx.AsyncClient, settings: Settings, emulator: Emulator
) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(client, token, "slot-001", "local", "reframe", {"aspect_ratio": "9:16", "mode": "pad"})
    assert r.status_code == 200
    fields = {**DSLR_FIELDS, "password": credentials(settings.credentials_path)["ingest_password"]}
    event = json.loads((EVENTS / "ingest_function_url.json").read_text())
    event["body"] = base64.b64encode(multipart_body(fields, jpeg(900, 600))).decode()

    # The emulator's worker (this loop) processes the job the Lambda-hosted ingest enqueues.
    response = await asyncio.to_thread(invoke_in_fresh_environment, settings, event)

    assert response["statusCode"] == 200, response
    assert response["isBase64Encoded"] is True
    assert response["headers"]["content-type"] == "image/jpeg"
    assert "x-job-id" in response["headers"]
    img = Image.open(io.BytesIO(base64.b64decode(response["body"])))
    assert img.size == (900, 1600)


async def test_function_url_event_with_wrong_password_is_401_json(settings: Settings, emulator: Emulator) -> None:
    event = json.loads((EVENTS / "ingest_function_url.json").read_text())
    event["body"] = base64.b64encode(multipart_body({**DSLR_FIELDS, "password": "wrong"}, jpeg())).decode()
    response = await asyncio.to_thread(invoke_in_fresh_environment, settings, event)
    assert response["statusCode"] == 401
    assert json.loads(response["body"])["error"]["code"] == "invalid_password"


def test_importing_the_handlers_is_cheap() -> None:
    """Cold start: importing a function module builds nothing (no database, no storage, no clients)."""
    import functions.admin.app as admin
    import functions.ingest.app as ingest
    from boothbridge.http.holder import LazyMangum

    for module in (ingest, admin):
        assert isinstance(module.handler, LazyMangum)
        assert module.handler._mangum is None  # built on the first invocation only
