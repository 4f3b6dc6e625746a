"""Small protocol faults seen in the field, over HTTP: a photo part named by RFC 5987 `filename*` (or by no file
name at all) is the photo; a JPEG that lacks only its end-of-image marker is processed."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.support.booth import DSLR_FIELDS, configure_slot, credentials, jpeg, operator_token, post_photo

BOUNDARY = "------------090306000104030805010400"


@pytest.fixture
async def ready(client: httpx.AsyncClient, settings: Settings) -> AsyncIterator[str]:
    """slot-001 configured (reframe 1:1). Yields the ingest password."""
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(client, token, "slot-001", "local", "reframe", {"aspect_ratio": "1:1"})
    assert r.status_code == 200, r.text
    yield credentials(settings.credentials_path)["ingest_password"]


def booth_body(photo_disposition: str, photo: bytes, password: str) -> bytes:
    parts = [
        f"--{BOUNDARY}\r\nContent-Disposition: {photo_disposition}\r\nContent-Type: image/jpeg\r\n\r\n".encode()
        + photo
        + b"\r\n"
    ]
    for name, value in {**DSLR_FIELDS, "password": password}.items():
        parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


async def post_raw(client: httpx.AsyncClient, disposition: str, photo: bytes, password: str) -> httpx.Response:
    return await client.post(
        "/ingest/slot-001",
        content=booth_body(disposition, photo, password),
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Expect": "100-continue"},
    )


async def logged_file(container: Container) -> list[dict[str, Any]]:
    async with container.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT request_fields FROM processing_log ORDER BY created_at"))).all()
    return [row.request_fields.get("_file") for row in rows]


async def test_reported_photo_named_only_by_filename_star_is_processed(
    client: httpx.AsyncClient, container: Container, ready: str
) -> None:
    photo = jpeg(900, 600)
    r = await post_raw(client, "form-data; name=\"fileToUpload\"; filename*=UTF-8''%E2%82%AC%20rates.jpg", photo, ready)
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (600, 600)
    # The same bytes posted the ordinary way attach to that job: what was read is byte for byte the photo.
    again = await post_photo(client, "slot-001", photo, ready)
    assert again.status_code == 200, again.text
    assert again.headers["x-job-id"] == r.headers["x-job-id"]
    files = await logged_file(container)
    assert files[0] == {"filename": "€ rates.jpg", "declared_type": "image/jpeg", "size_bytes": len(photo)}


async def test_photo_part_without_any_file_name_is_processed(
    client: httpx.AsyncClient, container: Container, ready: str
) -> None:
    photo = jpeg(640, 480)
    r = await post_raw(client, 'form-data; name="fileToUpload"', photo, ready)
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (480, 480)
    files = await logged_file(container)
    assert files[0]["size_bytes"] == len(photo)


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
async def test_jpeg_without_its_end_of_image_marker_is_processed_and_a_cut_one_is_not(
    client: httpx.AsyncClient, ready: str, progressive: bool
) -> None:
    buf = io.BytesIO()
    Image.open(io.BytesIO(jpeg(800, 600))).save(buf, "JPEG", quality=90, progressive=progressive)
    photo = buf.getvalue()
    r = await post_photo(client, "slot-001", photo[:-2], ready)
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == (600, 600)
    cut = await post_photo(client, "slot-001", photo[:-40], ready)
    assert cut.status_code == 422, cut.text
    assert cut.json()["error"]["code"] == "image_undecodable"
