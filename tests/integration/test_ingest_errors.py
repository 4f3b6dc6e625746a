"""The SPEC §2 error table and a bad-input corpus: uniform error bodies, never a 5xx, nothing stored."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, png, post_photo
from tests.support.storage import stored_counts

MAX_PIXELS = 4_000_000


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"max_image_pixels": MAX_PIXELS}


@pytest.fixture
async def ready(client: httpx.AsyncClient, settings: Settings) -> AsyncIterator[str]:
    """slot-001 configured (reframe 1:1); slot-002 left unconfigured. Yields the ingest password."""
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(client, token, "slot-001", "local", "reframe", {"aspect_ratio": "1:1"})
    assert r.status_code == 200, r.text
    yield credentials(settings.credentials_path)["ingest_password"]


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body


def truncated_jpeg() -> bytes:
    data = jpeg(800, 600)
    return data[: len(data) // 2]


CORPUS: list[tuple[str, dict[str, Any], int, str]] = [
    # (case, post_photo kwargs, status, code)
    ("wrong password", {"password": "nope"}, 401, "invalid_password"),
    ("no password", {"password": None}, 401, "invalid_password"),
    ("unknown slot", {"slot_id": "slot-999"}, 404, "slot_not_found"),
    ("unconfigured slot", {"slot_id": "slot-002"}, 409, "slot_not_configured"),
    ("no file", {"photo": None}, 400, "file_missing"),
    ("zero bytes", {"photo": b""}, 400, "file_empty"),
    ("truncated jpeg", {"photo": truncated_jpeg()}, 422, "image_undecodable"),
    ("text file named .jpg", {"photo": b"hello, this is not a photo\n" * 40}, 415, "unsupported_media_type"),
    ("gif (type not accepted)", {"photo": b"GIF89a" + b"\x00" * 64}, 415, "unsupported_media_type"),
    ("png over the pixel limit", {"photo": png(2500, 2000), "content_type": "image/png"}, 422, "image_too_many_pixels"),
    ("25 MB file", {"photo": b"\xff\xd8\xff" + b"\x00" * (25 * 1024 * 1024)}, 413, "file_too_large"),
]


@pytest.mark.parametrize(("case", "kwargs", "status", "code"), CORPUS, ids=[c[0] for c in CORPUS])
async def test_bad_input_gets_its_4xx_and_nothing_is_stored(
    client: httpx.AsyncClient,
    container: Container,
    ready: str,
    case: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    args: dict[str, Any] = {"slot_id": "slot-001", "photo": jpeg(), "password": ready}
    args.update(kwargs)
    r = await post_photo(client, args.pop("slot_id"), args.pop("photo"), args.pop("password"), **args)
    assert_error(r, status, code)
    assert await stored_counts(container) == {"jobs": 0, "media_objects": 0, "bucket_objects": 0}
    async with container.engine.connect() as conn:
        row = (await conn.execute(text("SELECT status, http_status, error_code FROM processing_log"))).one()
    assert (row.status, row.http_status, row.error_code) == ("ERROR", status, code)


async def test_oversized_streamed_body_without_length_is_refused(
    client: httpx.AsyncClient, container: Container, ready: str
) -> None:
    boundary = "----bb"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="password"\r\n\r\n{ready}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="fileToUpload"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()

    async def body() -> AsyncIterator[bytes]:
        yield head + b"\xff\xd8\xff"
        chunk = b"\x00" * (1024 * 1024)
        for _ in range(25):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    r = await client.post(
        "/ingest/slot-001", content=body(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert_error(r, 413, "file_too_large")
    assert await stored_counts(container) == {"jobs": 0, "media_objects": 0, "bucket_objects": 0}


@pytest.mark.parametrize(
    ("content", "ctype", "status", "code"),
    [
        (b'{"photo": "x"}', "application/json", 400, "invalid_form"),
        # Unparseable parts yield no fields at all, so the first thing missing is the password.
        (b"--x\r\nbroken", "multipart/form-data; boundary=x", 401, "invalid_password"),
        (b"", "multipart/form-data", 400, "invalid_form"),
    ],
    ids=["json body", "malformed multipart", "multipart without boundary"],
)
async def test_malformed_requests_are_4xx(
    client: httpx.AsyncClient, container: Container, ready: str, content: bytes, ctype: str, status: int, code: str
) -> None:
    r = await client.post("/ingest/slot-001", content=content, headers={"Content-Type": ctype})
    assert_error(r, status, code)
    assert await stored_counts(container) == {"jobs": 0, "media_objects": 0, "bucket_objects": 0}


async def test_unknown_paths_and_methods_use_the_uniform_error(client: httpx.AsyncClient, ready: str) -> None:
    assert_error(await client.get("/ingest/slot-001"), 405, "method_not_allowed")
    assert_error(await client.get("/nowhere"), 404, "not_found")


async def test_pixel_limit_allows_an_image_just_under_it(client: httpx.AsyncClient, ready: str) -> None:
    r = await post_photo(client, "slot-001", png(2000, 2000), ready, content_type="image/png")
    assert r.status_code == 200, r.text
    assert r.content[:3] == b"\xff\xd8\xff"  # reframe's default output is JPEG


async def test_declared_type_is_ignored_in_favour_of_the_bytes(client: httpx.AsyncClient, ready: str) -> None:
    # A real PNG sent as image/jpeg with a .JPG name is accepted as what it is.
    r = await post_photo(client, "slot-001", png(300, 200), ready, content_type="image/jpeg")
    assert r.status_code == 200, r.text
    from PIL import Image

    assert Image.open(io.BytesIO(r.content)).size == (200, 200)


async def test_nul_bytes_never_reach_the_database(client: httpx.AsyncClient, container: Container, ready: str) -> None:
    # Found by schemathesis: PostgreSQL text and jsonb cannot hold NUL.
    r = await client.post(
        "/ingest/slot%00001", files={"fileToUpload": ("a.jpg", jpeg(), "image/jpeg")}, data={"password": ready}
    )
    assert_error(r, 404, "slot_not_found")
    r = await post_photo(client, "slot-001", jpeg(333, 222), ready, extra={"pro\x00be": "DESK\x00TOP"})
    assert r.status_code == 200, r.text
    async with container.engine.connect() as conn:
        fields = (
            await conn.execute(text("SELECT request_fields FROM processing_log WHERE http_status = 200"))
        ).scalar_one()
    assert "DESKTOP" in fields.values(), fields  # the value arrives without its NUL, under whatever name
