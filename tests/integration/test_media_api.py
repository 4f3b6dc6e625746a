"""Uploading images (templates, public links) and using a template in a `frame` slot end to end."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import httpx
import pytest
from PIL import Image

from boothbridge.settings import Settings
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo


def frame_template() -> bytes:
    """A 400x300 red frame with a transparent 200x100 window at (100, 100)."""
    img = Image.new("RGBA", (400, 300), (220, 0, 0, 255))
    img.paste((0, 0, 0, 0), (100, 100, 300, 200))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


async def register(client: httpx.AsyncClient, token: str, data: bytes, **form: Any) -> httpx.Response:
    return await client.post(
        "/api/media/register",
        files={"file": ("t.png", data, "image/png")},
        data={k: str(v) for k, v in form.items()},
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_frame_slot_with_an_uploaded_template(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await register(client, token, frame_template(), purpose="template")
    assert r.status_code == 200, r.text
    template = r.json()
    assert template["expires_at"] is None and template["mime"] == "image/png"

    r = await configure_slot(
        client,
        token,
        "slot-001",
        "local",
        "frame",
        {"template_media_id": template["id"], "x": 100, "y": 100, "scale": 1.0, "output": {"format": "png"}},
    )
    assert r.status_code == 200, r.text
    photo = Image.new("RGB", (200, 100), (0, 0, 255))
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=95)
    r = await post_photo(client, "slot-001", buf.getvalue(), credentials(settings.credentials_path)["ingest_password"])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    out = Image.open(io.BytesIO(r.content)).convert("RGB")
    assert out.size == (400, 300)
    assert out.getpixel((10, 10)) == (220, 0, 0)  # the frame
    red, green, blue = out.getpixel((200, 150))  # the photo, through the window
    assert blue > 200 and red < 40 and green < 40


async def test_public_link_serves_until_it_expires_and_can_be_extended(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = await operator_token(client, settings.credentials_path)
    data = jpeg(64, 64)
    r = await register(client, token, data, ttl_sec=1)
    assert r.status_code == 200, r.text
    link = r.json()
    assert link["public_url"] == f"{settings.base_url}/public/media/{link['id']}"
    path = f"/public/media/{link['id']}"
    got = await client.get(path)
    assert got.status_code == 200 and got.content == data and got.headers["content-type"] == "image/jpeg"

    extended = await client.post(
        "/api/media/extend", json={"id": link["id"], "ttl_sec": 600}, headers={"Authorization": f"Bearer {token}"}
    )
    assert extended.status_code == 200 and extended.json()["expires_at"] > link["expires_at"]

    r = await register(client, token, jpeg(32, 32), ttl_sec=1)
    short = r.json()["id"]
    await asyncio.sleep(1.2)
    gone = await client.get(f"/public/media/{short}")
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "media_expired"
    assert (await client.get(path)).status_code == 200  # the extended one still serves
    assert (await client.get("/public/media/00000000-0000-0000-0000-000000000000")).status_code == 404
    assert (await client.get("/public/media/not-a-uuid")).status_code == 404


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [(b"", 400, "file_empty"), (b"plain text, not an image", 415, "unsupported_media_type")],
)
async def test_register_refuses_non_images(
    client: httpx.AsyncClient, settings: Settings, data: bytes, status: int, code: str
) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await register(client, token, data)
    assert r.status_code == status and r.json()["error"]["code"] == code


async def test_register_needs_a_token(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/media/register", files={"file": ("t.png", jpeg(), "image/jpeg")})
    assert r.status_code == 401
