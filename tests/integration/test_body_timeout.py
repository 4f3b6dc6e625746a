"""A request body that stalls (slow-loris) is cut with 408 request_timeout in the uniform error format, on the
ingest endpoint and on the operator API's uploads, and nothing is stored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.support.booth import configure_slot, credentials, jpeg, operator_token
from tests.support.live_server import serving

BOUNDARY = "----stallstallstall"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"body_timeout_sec": 0.5}


@pytest.fixture
async def port(emulator: Any) -> AsyncIterator[int]:
    async with serving(emulator) as p:
        yield p


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if filename:
        head += "Content-Type: image/jpeg\r\n"
    return head.encode() + b"\r\n" + value + b"\r\n"


async def stalled_post(port: int, path: str, sent: bytes, declared: int, headers: dict[str, str]) -> tuple[int, Any]:
    """Send the headers and `sent` of a `declared`-byte body, then nothing: the server's answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}",
            f"Content-Length: {declared}",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + sent)
        await writer.drain()
        # The client never sends the rest; the server must answer by itself.
        raw = await asyncio.wait_for(reader.read(), 60)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return status, json.loads(body)


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


async def stored(container: Container) -> dict[str, int]:
    async with container.engine.connect() as conn:
        return {
            table: (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
            for table in ("media_objects", "jobs")
        }


async def test_stalled_ingest_body_is_cut_with_408_and_nothing_is_stored(
    client: httpx.AsyncClient, settings: Settings, container: Container, port: int
) -> None:
    token = await operator_token(client, settings.credentials_path)
    assert (await configure_slot(client, token, "slot-001", "local", "resize", {"width": 64})).status_code == 200
    password = credentials(settings.credentials_path)["ingest_password"]
    photo = jpeg(640, 480)
    body = (
        part("password", password.encode())
        + part("fileToUpload", photo, "IMG_0001.JPG")
        + f"--{BOUNDARY}--\r\n".encode()
    )

    status, answer = await stalled_post(port, "/ingest/slot-001", body[: len(body) // 2], len(body), {})

    assert status == 408
    assert answer == {
        "error": {
            "code": "request_timeout",
            "message": "the request body stalled: nothing arrived for too long",
            "details": {"body_timeout_sec": 0.5},
        }
    }
    assert await stored(container) == {"media_objects": 0, "jobs": 0}
    async with container.engine.connect() as conn:
        row = (await conn.execute(text("SELECT http_status, error_code, request_fields FROM processing_log"))).one()
    assert (row.http_status, row.error_code, row.request_fields) == (408, "request_timeout", {})


async def test_stalled_upload_to_the_operator_api_is_cut_with_408(
    client: httpx.AsyncClient, settings: Settings, container: Container, port: int
) -> None:
    token = await operator_token(client, settings.credentials_path)
    body = part("purpose", b"template") + part("file", jpeg(640, 480), "t.jpg") + f"--{BOUNDARY}--\r\n".encode()

    status, answer = await stalled_post(
        port, "/api/media/register", body[: len(body) // 2], len(body), {"Authorization": f"Bearer {token}"}
    )

    assert status == 408
    assert answer["error"]["code"] == "request_timeout"
    assert answer["error"]["details"] == {"body_timeout_sec": 0.5}
    assert await stored(container) == {"media_objects": 0, "jobs": 0}

    # A whole body sent at once is unaffected.
    r = await client.post(
        "/api/media/register",
        files={"file": ("t.jpg", jpeg(64, 64), "image/jpeg")},
        data={"purpose": "template"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text


async def test_stalled_test_photo_upload_on_the_slot_page_is_cut_with_408(
    client: httpx.AsyncClient, settings: Settings, container: Container, port: int
) -> None:
    token = await operator_token(client, settings.credentials_path)
    body = part("file", jpeg(640, 480), "t.jpg") + f"--{BOUNDARY}--\r\n".encode()
    status, answer = await stalled_post(
        port, "/api/slots/slot-001/test", body[: len(body) // 2], len(body), {"Authorization": f"Bearer {token}"}
    )
    assert status == 408
    assert answer["error"]["code"] == "request_timeout"
    assert await stored(container) == {"media_objects": 0, "jobs": 0}
