"""Over a real socket, byte for byte like DSLR Remote Pro 3.30.2: headers with `Expect: 100-continue`, wait for
`100 Continue`, then the multipart body; the answer is the processed JPEG."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image

from boothbridge.settings import Settings
from local.app import Emulator
from tests.integration.test_lambda_ingest import BOUNDARY, multipart_body
from tests.support.booth import DSLR_FIELDS, configure_slot, credentials, jpeg, operator_token
from tests.support.live_server import serving


@pytest.fixture
async def live_port(emulator: Emulator) -> AsyncIterator[int]:
    async with serving(emulator) as port:
        yield port


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line = (await reader.readline()).decode()
    status = int(status_line.split()[1])
    headers = {}
    while (line := (await reader.readline()).decode().strip()) != "":
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def test_dslr_remote_pro_post_with_100_continue(live_port: int, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live_port}") as api:
        token = await operator_token(api, settings.credentials_path)
        r = await configure_slot(api, token, "slot-001", "local", "reframe", {"aspect_ratio": "1:1"})
        assert r.status_code == 200
    body = multipart_body(
        {**DSLR_FIELDS, "password": credentials(settings.credentials_path)["ingest_password"]}, jpeg(1200, 800)
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", live_port)
    try:
        writer.write(
            (
                "POST /ingest/slot-001 HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{live_port}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Expect: 100-continue\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        # Like the booth: nothing is sent until the server says so.
        interim = await asyncio.wait_for(reader.readline(), 5)
        assert interim.startswith(b"HTTP/1.1 100")
        assert await reader.readline() == b"\r\n"
        writer.write(body)
        await writer.drain()
        status, headers, payload = await asyncio.wait_for(read_response(reader), 30)
    finally:
        writer.close()
    assert status == 200
    assert headers["content-type"] == "image/jpeg"
    assert headers["x-job-id"]
    assert Image.open(io.BytesIO(payload)).size == (800, 800)


async def test_oversized_upload_is_refused_before_the_body_is_sent(live_port: int, settings: Settings) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", live_port)
    try:
        writer.write(
            (
                "POST /ingest/slot-001 HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{live_port}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"Content-Length: {25 * 1024 * 1024}\r\n"
                "Expect: 100-continue\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        status, _, payload = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    assert status == 413  # answered at once: no "100 Continue", so the booth never uploads the 25 MB
    assert b'"file_too_large"' in payload
