"""Helpers that act like the booth and the operator: DSLR-like posts, test photos, API sign-in."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

DSLR_FIELDS = {
    "time": "1758217512",
    "user_id": "Acer",
    "id": "CY04N068111304S2L_00000001.",
    "profile": "C:\\Users\\Acer\\Documents\\PhotoboothImages\\setup_Serg.xml",
    "status": "C:\\Users\\Acer\\Documents\\PhotoboothImages\\screenSerg\\preview.jpg",
    "hash": "7b6c683e1d3fd29c8701791c54e3c12a236f5a5b",
    "name": "DESKTOP-K968T3F",
    "model": "Windows",
    "version": "3.30.2",
}


def jpeg(width: int = 640, height: int = 480, color: tuple[int, int, int] = (200, 120, 40), quality: int = 90) -> bytes:
    """A real JPEG with some structure (a gradient band), so re-encodes differ from the input."""
    img = Image.new("RGB", (width, height), color)
    for x in range(0, width, max(width // 32, 1)):
        img.paste((x * 255 // max(width, 1), 80, 160), (x, 0, x + 2, height // 3))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buf, "PNG")
    return buf.getvalue()


def credentials(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def multipart_fields(password: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    fields = dict(DSLR_FIELDS)
    if password is not None:
        fields["password"] = password
    fields.update(extra or {})
    return fields


async def post_photo(
    client: httpx.AsyncClient,
    slot_id: str,
    photo: bytes | None,
    password: str | None,
    *,
    filename: str = "IMG_0003.JPG",
    content_type: str = "image/jpeg",
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    """POST like DSLR Remote Pro: multipart with fileToUpload plus the booth's text fields."""
    files = {"fileToUpload": (filename, photo, content_type)} if photo is not None else None
    return await client.post(
        f"/ingest/{slot_id}",
        data=multipart_fields(password, extra),
        files=files,
        headers={"Expect": "100-continue"},
    )


async def operator_token(client: httpx.AsyncClient, creds_path: Path, username: str = "serg") -> str:
    creds = credentials(creds_path)
    r = await client.post("/api/login", json={"username": username, "password": creds["users"][username]})
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


async def configure_slot(
    client: httpx.AsyncClient,
    token: str,
    slot_id: str,
    provider_id: str,
    operation_id: str,
    settings_json: dict[str, Any],
    **extra: Any,
) -> httpx.Response:
    body = {"name": f"{operation_id} slot", "provider_id": provider_id, "operation_id": operation_id}
    body["settings_json"] = settings_json  # type: ignore[assignment]
    body.update(extra)
    return await client.put(f"/api/slots/{slot_id}", json=body, headers={"Authorization": f"Bearer {token}"})
