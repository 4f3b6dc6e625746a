"""Media de-duplication (seed 004): the same template or public-link bytes are stored once; lookup by SHA-256."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.support.booth import jpeg, operator_token, png
from tests.support.storage import bucket_keys


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(client: httpx.AsyncClient, token: str, data: bytes, **form: Any) -> dict[str, Any]:
    r = await client.post(
        "/api/media/register",
        files={"file": ("t.png", data, "image/png")},
        data={k: str(v) for k, v in form.items()},
        headers=auth(token),
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def error_code(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["code"])


async def media_count(container: Container) -> int:
    async with container.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM media_objects"))).scalar_one())


async def test_same_template_twice_is_one_object(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    data = png(120, 80)
    first = await register(client, token, data, purpose="template")
    second = await register(client, token, data, purpose="template")

    assert second == first
    assert first["expires_at"] is None and first["sha256"] == hashlib.sha256(data).hexdigest()
    assert await media_count(container) == 1
    assert len(bucket_keys(settings)) == 1
    assert (await client.get(f"/public/media/{first['id']}")).content == data

    # The same bytes as a public link are another kind, with a lifecycle of their own: a separate object.
    link = await register(client, token, data, purpose="public", ttl_sec=60)
    assert link["id"] != first["id"] and link["kind"] == "public"
    assert len(bucket_keys(settings)) == 2


async def test_same_public_link_twice_is_one_object_with_the_later_expiry(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    data = jpeg(64, 64)
    short = await register(client, token, data, ttl_sec=60)
    long = await register(client, token, data, ttl_sec=3600)

    assert long["id"] == short["id"]
    assert datetime.fromisoformat(long["expires_at"]) > datetime.fromisoformat(short["expires_at"])
    assert datetime.fromisoformat(long["expires_at"]) > datetime.now(UTC) + timedelta(seconds=3500)
    # A later, shorter registration never cuts the shared link short.
    again = await register(client, token, data, ttl_sec=60)
    assert (again["id"], again["expires_at"]) == (long["id"], long["expires_at"])
    # Nor does a shorter extension.
    r = await client.post("/api/media/extend", json={"id": long["id"], "ttl_sec": 30}, headers=auth(token))
    assert r.status_code == 200 and r.json()["expires_at"] == long["expires_at"]
    assert await media_count(container) == 1 and len(bucket_keys(settings)) == 1


async def test_an_expired_object_is_not_reused(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    data = jpeg(48, 48)
    old = await register(client, token, data, ttl_sec=1)
    await asyncio.sleep(1.2)  # expired, and not yet removed by cleanup

    fresh = await register(client, token, data, ttl_sec=60)

    assert fresh["id"] != old["id"]
    assert (await client.get(f"/public/media/{fresh['id']}")).status_code == 200
    assert (await client.get(f"/public/media/{old['id']}")).status_code == 410  # not brought back
    found = await client.get(f"/api/media/hash/{fresh['sha256']}", headers=auth(token))
    assert found.status_code == 200 and found.json()["id"] == fresh["id"]


async def test_sources_and_results_are_not_deduplicated(container: Container) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    for kind in ("source", "result"):
        a = await container.media.save(kind, b"\xff\xd8\xff same bytes", "image/jpeg", later)
        b = await container.media.save(kind, b"\xff\xd8\xff same bytes", "image/jpeg", later)
        assert a.id != b.id and a.storage_key != b.storage_key


async def test_identical_uploads_at_once_leave_whole_objects(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    data = png(90, 90)
    results = await asyncio.gather(*(register(client, token, data, purpose="template") for _ in range(2)))

    ids = {r["id"] for r in results}
    assert 1 <= len(ids) <= 2 and await media_count(container) == len(ids) == len(bucket_keys(settings))
    for media_id in ids:  # every object a caller got is whole
        assert (await client.get(f"/public/media/{media_id}")).content == data
    # Afterwards the bytes are reused, not stored a third time.
    assert (await register(client, token, data, purpose="template"))["id"] in ids
    assert await media_count(container) == len(ids)


async def test_lookup_by_hash(client: httpx.AsyncClient, settings: Settings, container: Container) -> None:
    token = await operator_token(client, settings.credentials_path)
    data = png(40, 30)
    template = await register(client, token, data, purpose="template")
    sha = hashlib.sha256(data).hexdigest()

    found = await client.get(f"/api/media/hash/{sha}", headers=auth(token))
    assert found.status_code == 200, found.text
    assert found.json() == template
    assert (await client.get(f"/api/media/hash/{sha.upper()}", headers=auth(token))).json()["id"] == template["id"]
    assert (await client.get(f"/api/media/hash/{sha}?kind=template", headers=auth(token))).status_code == 200
    r = await client.get(f"/api/media/hash/{sha}?kind=public", headers=auth(token))
    assert error_code(r, 404) == "media_not_found"

    unknown = hashlib.sha256(b"never uploaded").hexdigest()
    assert error_code(await client.get(f"/api/media/hash/{unknown}", headers=auth(token)), 404) == "media_not_found"
    for bad in ("abc", "z" * 64, sha + "0"):
        assert error_code(await client.get(f"/api/media/hash/{bad}", headers=auth(token)), 400) == "invalid_parameter"
    r = await client.get(f"/api/media/hash/{sha}?kind=source", headers=auth(token))
    assert error_code(r, 400) == "invalid_parameter"
    assert (await client.get(f"/api/media/hash/{sha}")).status_code == 401


async def test_booth_photos_are_not_found_by_hash(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    data = b"\xff\xd8\xff a guest's photo"
    await container.media.save("source", data, "image/jpeg", datetime.now(UTC) + timedelta(hours=1))
    r = await client.get(f"/api/media/hash/{hashlib.sha256(data).hexdigest()}", headers=auth(token))
    assert error_code(r, 404) == "media_not_found"


@pytest.mark.parametrize("kind", ["template", "public"])
async def test_reuse_through_the_service(container: Container, kind: str) -> None:
    expires = None if kind == "template" else datetime.now(UTC) + timedelta(minutes=5)
    a = await container.media.save(kind, b"\x89PNG shared", "image/png", expires)
    b = await container.media.save(kind, b"\x89PNG shared", "image/png", expires)
    assert b == a
    assert (await container.media.read(a.id))[0] == b"\x89PNG shared"
