"""The booth's photo streams to storage while its form is read (issue 13), on both backends (S3 over moto, with a
photo of more than one 5 MiB part, and the local folder): what is stored is the photo byte for byte, a re-post
keeps no second copy, and every refusal or failure on the way (a wrong password after or before the photo, a
refused type, a too-large body, a malformed form, a disconnect, a stalled body, a photo the worker cannot decode)
leaves nothing behind: no row, no object, no temp file, no incomplete multipart upload."""

from __future__ import annotations

import functools
import io
import json
import logging
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.media.s3_store import PART_BYTES
from boothbridge.settings import Settings
from tests.integration.test_body_timeout import part as stall_part
from tests.integration.test_body_timeout import stalled_post
from tests.integration.test_object_store_streaming import leftovers
from tests.support.booth import DSLR_FIELDS, configure_slot, credentials, jpeg, operator_token, post_photo
from tests.support.live_server import serving

BOUNDARY = "----streamstreamstream"


@pytest.fixture(params=["s3", "folder"])
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    backend = {} if request.param == "s3" else {"s3_bucket": None, "s3_endpoint_url": None}
    return {**backend, "body_timeout_sec": 1.0}


@functools.cache
def big_jpeg() -> bytes:
    """A real JPEG of more than one S3 part (noise compresses badly), ending with its end-of-image marker."""
    rng = random.Random(13)
    img = Image.frombytes("RGB", (2000, 1500), rng.randbytes(2000 * 1500 * 3))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, subsampling=0)
    data = buf.getvalue()
    assert len(data) > PART_BYTES
    return data


def corrupt_jpeg() -> bytes:
    """A JPEG that ends as a whole one does (FF D9) and has a whole header, but whose compressed data is broken:
    only a decode finds it."""
    data = bytearray(jpeg(1600, 1200))
    rng = random.Random(1)
    for _ in range(50):
        data[rng.randrange(len(data) // 3, len(data) - 10)] = rng.randrange(256)
    assert data.endswith(b"\xff\xd9")
    return bytes(data)


async def ready_slot(client: httpx.AsyncClient, settings: Settings, provider: str = "sleepy", **extra: Any) -> str:
    token = await operator_token(client, settings.credentials_path)
    if provider == "sleepy":
        r = await configure_slot(client, token, "slot-001", "sleepy", "echo", {}, **extra)
    else:
        r = await configure_slot(client, token, "slot-001", "local", "reframe", {"aspect_ratio": "1:1"}, **extra)
    assert r.status_code == 200, r.text
    return str(credentials(settings.credentials_path)["ingest_password"])


async def rows(container: Container) -> dict[str, int]:
    async with container.engine.connect() as conn:
        return {
            table: (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
            for table in ("jobs", "media_objects")
        }


async def nothing_stored(container: Container) -> None:
    assert await rows(container) == {"jobs": 0, "media_objects": 0}
    assert await leftovers(container.media.store) == []


def part(name: str, value: bytes, filename: str | None = None, ctype: str = "image/jpeg") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if filename:
        head += f"Content-Type: {ctype}\r\n"
    return head.encode() + b"\r\n" + value + b"\r\n"


def photo_first(photo: bytes, password: str, ctype: str = "image/jpeg") -> bytes:
    """A DSLR Remote Pro body: the photo part first, the password and the booth's fields after it."""
    fields = [part(k, v.encode()) for k, v in {**DSLR_FIELDS, "password": password}.items()]
    return part("fileToUpload", photo, "IMG_0003.JPG", ctype) + b"".join(fields) + f"--{BOUNDARY}--\r\n".encode()


async def post_body(client: httpx.AsyncClient, body: bytes | AsyncIterator[bytes]) -> httpx.Response:
    return await client.post(
        "/ingest/slot-001", content=body, headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    )


def error_code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


async def test_the_stored_photo_is_the_posted_one_and_a_re_post_keeps_no_second_copy(
    client: httpx.AsyncClient, settings: Settings, container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    password = await ready_slot(client, settings)
    photo = big_jpeg()
    with caplog.at_level(logging.INFO, logger="boothbridge.ingest.intake"):
        r = await post_body(client, photo_first(photo, password))
    assert r.status_code == 200, r.text
    assert r.content == photo  # the echo provider answers the photo it was given
    async with container.engine.connect() as conn:
        source = (
            await conn.execute(text("SELECT storage_key, size_bytes, sha256 FROM media_objects WHERE kind = 'source'"))
        ).one()
        sha = (await conn.execute(text("SELECT source_sha256 FROM jobs"))).scalar_one()
        keys = sorted((await conn.execute(text("SELECT storage_key FROM media_objects"))).scalars())
    assert await container.media.store.get(source.storage_key) == photo
    assert source.size_bytes == len(photo) and source.sha256 == sha
    enqueued = [rec for rec in caplog.records if "enqueued" in rec.getMessage()]
    assert len(enqueued) == 1 and isinstance(enqueued[0].__dict__["work_before_enqueue_ms"], float)

    again = await post_photo(client, "slot-001", photo, password)
    assert again.status_code == 200, again.text
    assert again.headers["x-job-id"] == r.headers["x-job-id"]
    assert await leftovers(container.media.store) == keys  # the photo and the result: the re-post's copy is gone


@pytest.mark.parametrize("photo", [big_jpeg, lambda: jpeg(640, 480)], ids=["multipart", "small"])
async def test_a_wrong_password_after_the_photo_stores_nothing(
    client: httpx.AsyncClient, settings: Settings, container: Container, photo: Any
) -> None:
    await ready_slot(client, settings)
    assert error_code(await post_body(client, photo_first(photo(), "wrong"))) == (401, "invalid_password")
    await nothing_stored(container)


async def test_a_wrong_password_before_the_photo_is_refused_before_any_byte_is_stored(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    await ready_slot(client, settings)
    r = await post_photo(client, "slot-001", big_jpeg(), "wrong")  # httpx sends the fields first
    assert error_code(r) == (401, "invalid_password")
    await nothing_stored(container)


async def test_a_refused_type_stores_nothing(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    password = await ready_slot(client, settings)
    gif = b"GIF89a" + bytes(PART_BYTES + 10)
    assert error_code(await post_body(client, photo_first(gif, password))) == (415, "unsupported_media_type")
    await nothing_stored(container)


async def test_a_too_large_photo_is_cut_and_what_was_stored_removed(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    password = await ready_slot(client, settings)
    head = (
        part("password", password.encode())
        + (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="fileToUpload"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
    )

    async def body() -> AsyncIterator[bytes]:  # no Content-Length: the cap is met while streaming
        yield head + b"\xff\xd8\xff"
        for _ in range(25):
            yield bytes(1024 * 1024)
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    assert error_code(await post_body(client, body())) == (413, "file_too_large")
    await nothing_stored(container)


async def test_a_form_malformed_after_the_photo_stores_nothing(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    password = await ready_slot(client, settings)
    broken = f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--{BOUNDARY}--\r\n".encode()
    body = part("password", password.encode()) + part("fileToUpload", big_jpeg(), "a.jpg") + broken
    assert error_code(await post_body(client, body)) == (400, "invalid_form")
    await nothing_stored(container)


async def asgi_post(
    app: Any, first: bytes, rest: Iterator[bytes], *, disconnect_after: int | None
) -> tuple[int, Any, int]:
    """POST /ingest/slot-001 straight to the ASGI app: `first`, then pieces of `rest` for as long as the app asks
    (or an `http.disconnect` after `disconnect_after` messages). Returns the status, the JSON body and how many
    body messages the app took."""
    taken = 0

    async def receive() -> dict[str, Any]:
        nonlocal taken
        if disconnect_after is not None and taken >= disconnect_after:
            return {"type": "http.disconnect"}
        taken += 1
        return {"type": "http.request", "body": first if taken == 1 else next(rest), "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    ctype = f"multipart/form-data; boundary={BOUNDARY}".encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/ingest/slot-001",
        "raw_path": b"/ingest/slot-001",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", ctype)],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), taken


def endless(piece: bytes) -> Iterator[bytes]:
    while True:
        yield piece


async def test_a_disconnect_mid_photo_stores_nothing(
    emulator: Any, settings: Settings, client: httpx.AsyncClient, container: Container
) -> None:
    password = await ready_slot(client, settings)
    head = part("password", password.encode()) + part("fileToUpload", b"", "a.jpg")[:-2]  # the photo part opens
    photo = big_jpeg()
    pieces = iter([photo[i : i + 65536] for i in range(0, len(photo), 65536)])
    status, body, _ = await asgi_post(emulator, head, pieces, disconnect_after=100)  # about 6 MB in
    assert (status, body["error"]["code"]) == (400, "client_disconnected")
    await nothing_stored(container)


async def test_a_refused_type_is_answered_at_once_without_reading_the_rest(
    emulator: Any, settings: Settings, client: httpx.AsyncClient, container: Container
) -> None:
    await ready_slot(client, settings)
    head = part("fileToUpload", b"", "a.gif", "image/gif")[:-2] + b"GIF89a"
    status, body, taken = await asgi_post(emulator, head, endless(bytes(65536)), disconnect_after=None)
    # Had it read on, the body would have ended at the size cap with 413 after some 300 pieces.
    assert (status, body["error"]["code"], taken) == (415, "unsupported_media_type", 2)
    await nothing_stored(container)


async def test_a_body_that_stalls_mid_photo_is_408_and_stores_nothing(
    emulator: Any, settings: Settings, client: httpx.AsyncClient, container: Container
) -> None:
    password = await ready_slot(client, settings)
    sent = stall_part("password", password.encode()) + stall_part("fileToUpload", big_jpeg(), "a.jpg")[:-100]
    async with serving(emulator) as port:
        status, body = await stalled_post(port, "/ingest/slot-001", sent, len(sent) + 1000, {})
    assert (status, body["error"]["code"]) == (408, "request_timeout")
    await nothing_stored(container)


@pytest.mark.parametrize("provider", ["local", "sleepy"], ids=["provider-decodes", "worker-decodes"])
@pytest.mark.parametrize("policy", ["error", "original"])
async def test_a_photo_corrupt_inside_is_422_from_the_worker_s_decode_and_deleted_at_once(
    client: httpx.AsyncClient, settings: Settings, container: Container, provider: str, policy: str
) -> None:
    password = await ready_slot(client, settings, provider, failure_policy=policy)
    r = await post_photo(client, "slot-001", corrupt_jpeg(), password)
    assert error_code(r) == (422, "image_undecodable"), r.text  # never the booth's own photo back
    async with container.engine.connect() as conn:
        job = (await conn.execute(text("SELECT status, error_code, attempt FROM jobs"))).one()
    assert (job.status, job.error_code, job.attempt) == ("failed", "image_undecodable", 1)  # not retried
    assert r.json()["error"]["details"]["job_id"] == r.headers["x-job-id"]
    assert (await rows(container))["media_objects"] == 0
    assert await leftovers(container.media.store) == []
