"""Media belong to the operator who uploaded them: igor cannot find serg's template by its hash, reuse it by
uploading the same bytes, name it in a slot (saved or test run), or extend serg's public link; identical bytes
uploaded by igor make an object of igor's own. Uploads from before owners were recorded stay usable by the
operator whose slot already names them."""

from __future__ import annotations

import hashlib
import json
import uuid

import httpx
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.integration.test_media_api import frame_template, register
from tests.support.booth import configure_slot, jpeg, operator_token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def frame_settings(media_id: str) -> dict[str, object]:
    return {"template_media_id": media_id, "x": 100, "y": 100, "scale": 1.0}


def error_of(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    error: dict[str, object] = r.json()["error"]
    return error


async def test_igor_cannot_find_reuse_reference_or_extend_sergs_media(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    serg = await operator_token(client, settings.credentials_path, "serg")
    igor = await operator_token(client, settings.credentials_path, "igor")
    data = frame_template()
    sha = hashlib.sha256(data).hexdigest()

    r = await register(client, serg, data, purpose="template")
    assert r.status_code == 200, r.text
    sergs = r.json()["id"]
    r = await register(client, serg, jpeg(50, 50), purpose="public", ttl_sec=600)
    assert r.status_code == 200, r.text
    sergs_link = r.json()["id"]

    # Found by its hash: by serg only.
    assert (await client.get(f"/api/media/hash/{sha}", headers=auth(serg))).json()["id"] == sergs
    r = await client.get(f"/api/media/hash/{sha}", headers=auth(igor))
    assert error_of(r, 404)["code"] == "media_not_found"

    # Named in a slot: serg may, igor gets the same answer as for an image that does not exist.
    assert (await configure_slot(client, serg, "slot-001", "local", "frame", frame_settings(sergs))).status_code == 200
    r = await configure_slot(client, igor, "slot-041", "local", "frame", frame_settings(sergs))
    error = error_of(r, 422)
    assert error["code"] == "media_not_found"
    assert error["details"] == {"fields": [{"field": "template_media_id", "message": "no such media object"}]}
    missing = str(uuid.uuid4())
    r = await configure_slot(client, igor, "slot-041", "local", "frame", frame_settings(missing))
    assert error_of(r, 422) == error  # indistinguishable from a missing one
    # ... nor in a test run of an unsaved configuration.
    r = await client.post(
        "/api/slots/slot-041/test",
        files={"file": ("p.jpg", jpeg(200, 100), "image/jpeg")},
        data={
            "config": json.dumps(
                {"provider_id": "local", "operation_id": "frame", "settings_json": frame_settings(sergs)}
            )
        },
        headers=auth(igor),
    )
    assert error_of(r, 422) == error

    # Extended: serg's link by serg only.
    r = await client.post("/api/media/extend", json={"id": sergs_link, "ttl_sec": 3600}, headers=auth(igor))
    assert error_of(r, 404)["code"] == "media_not_found"
    r = await client.post("/api/media/extend", json={"id": sergs_link, "ttl_sec": 3600}, headers=auth(serg))
    assert r.status_code == 200, r.text

    # Identical bytes uploaded by igor: igor's own object, which igor finds, names and reuses.
    r = await register(client, igor, data, purpose="template")
    assert r.status_code == 200, r.text
    igors = r.json()["id"]
    assert igors != sergs and r.json()["sha256"] == sha
    assert (await client.get(f"/api/media/hash/{sha}", headers=auth(igor))).json()["id"] == igors
    assert (await client.get(f"/api/media/hash/{sha}", headers=auth(serg))).json()["id"] == sergs
    assert (await register(client, igor, data, purpose="template")).json()["id"] == igors
    assert (await register(client, serg, data, purpose="template")).json()["id"] == sergs
    r = await configure_slot(client, igor, "slot-041", "local", "frame", frame_settings(igors))
    assert r.status_code == 200, r.text

    async with container.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT m.id, u.username FROM media_objects m JOIN users u ON u.id = m.owner_id"
                    " WHERE m.sha256 = :sha ORDER BY u.username"
                ),
                {"sha": sha},
            )
        ).all()
    assert [(str(r.id), r.username) for r in rows] == [(igors, "igor"), (sergs, "serg")]


async def test_uploads_without_an_owner_stay_usable_where_already_named(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    """A template uploaded before migration 0007 (no owner): the operator whose slot names it can save that slot
    again (and name it in another slot of theirs); nobody finds it by hash or reuses it; the other operator
    cannot name it."""
    serg = await operator_token(client, settings.credentials_path, "serg")
    igor = await operator_token(client, settings.credentials_path, "igor")
    data = frame_template()
    r = await register(client, serg, data, purpose="template")
    legacy = r.json()["id"]
    assert (await configure_slot(client, serg, "slot-001", "local", "frame", frame_settings(legacy))).status_code == 200
    async with container.engine.begin() as conn:
        await conn.execute(text("UPDATE media_objects SET owner_id = NULL WHERE id = :id"), {"id": legacy})

    assert (await configure_slot(client, serg, "slot-001", "local", "frame", frame_settings(legacy))).status_code == 200
    assert (await configure_slot(client, serg, "slot-002", "local", "frame", frame_settings(legacy))).status_code == 200
    r = await configure_slot(client, igor, "slot-041", "local", "frame", frame_settings(legacy))
    assert error_of(r, 422)["code"] == "media_not_found"
    sha = hashlib.sha256(data).hexdigest()
    for token in (serg, igor):
        assert (await client.get(f"/api/media/hash/{sha}", headers=auth(token))).status_code == 404
    r = await register(client, serg, data, purpose="template")
    assert r.status_code == 200 and r.json()["id"] != legacy  # a new object of serg's, not the ownerless one
