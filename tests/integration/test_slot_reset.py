"""Slot reset (seed 003): the slot shows as free again, but keeps its id, its owner and its ingest URL; its
statistics stay; a booth posting to it gets 409 slot_not_configured."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["code"])


async def slot_row(c: Container, slot_id: str) -> dict[str, Any]:
    async with c.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT user_id, name, last_reset_at FROM slots WHERE id = :id"),
                {"id": slot_id},
            )
        ).one()
    return dict(row._mapping)


async def log_rows(c: Container, slot_id: str) -> list[tuple[str, int]]:
    async with c.engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT status, http_status FROM processing_log WHERE slot_id = :id ORDER BY id"),
                {"id": slot_id},
            )
        ).all()
    return [(r.status, r.http_status) for r in rows]


async def test_reset_frees_the_slot_but_keeps_id_url_owner_and_stats(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    ingest_password = credentials(settings.credentials_path)["ingest_password"]
    r = await configure_slot(
        client, token, "slot-001", "local", "resize", {"width": 256}, name="Fashion", failure_policy="original"
    )
    assert r.status_code == 200, r.text
    before = (await client.get("/api/slots/slot-001", headers=auth(token))).json()
    assert before["is_configured"] is True
    assert before["failure_policy"] == "original"

    # A booth photo processed through the configured slot: a statistics row.
    r = await post_photo(client, "slot-001", jpeg(), ingest_password)
    assert r.status_code == 200, r.text
    assert await log_rows(container, "slot-001") == [("SUCCESS", 200)]
    summary_before = (await client.get("/api/stats/summary", headers=auth(token))).json()
    owner_before = await slot_row(container, "slot-001")

    r = await client.post("/api/slots/slot-001/reset", headers=auth(token))
    assert r.status_code == 200, r.text
    reset = r.json()
    assert reset["id"] == "slot-001"
    assert reset["is_configured"] is False
    assert (reset["name"], reset["provider_id"], reset["operation_id"], reset["settings_json"]) == ("", None, None, {})
    assert reset["failure_policy"] == "error"
    assert reset["version"] == before["version"] + 1
    assert reset["ingest_url"] == before["ingest_url"] == f"{settings.base_url}/ingest/slot-001"

    got = (await client.get("/api/slots/slot-001", headers=auth(token))).json()
    assert got == reset
    listed = (await client.get("/api/slots", headers=auth(token))).json()
    assert listed["meta"]["total"] == 40
    assert next(s for s in listed["data"] if s["id"] == "slot-001") == reset

    # Same owner; last_reset_at (the statistics reset) untouched; the statistics are all still there.
    after = await slot_row(container, "slot-001")
    assert after["user_id"] == owner_before["user_id"]
    assert after["last_reset_at"] is None
    assert await log_rows(container, "slot-001") == [("SUCCESS", 200)]
    summary_after = (await client.get("/api/stats/summary", headers=auth(token))).json()
    assert summary_after["processed_all_time"] == summary_before["processed_all_time"] == 1
    slot_stats = next(s for s in summary_after["data"] if s["id"] == "slot-001")
    assert (slot_stats["processed"], slot_stats["requests"]) == (1, 1)

    # The booth's next photo: the slot is not configured any more.
    r = await post_photo(client, "slot-001", jpeg(color=(10, 200, 90)), ingest_password)
    assert error_code(r, 409) == "slot_not_configured"
    assert await log_rows(container, "slot-001") == [("SUCCESS", 200), ("ERROR", 409)]

    # Configuring it again works on the same record and URL.
    r = await configure_slot(client, token, "slot-001", "local", "resize", {"width": 128}, version=reset["version"])
    assert r.status_code == 200, r.text
    again = (await client.get("/api/slots/slot-001", headers=auth(token))).json()
    assert again["is_configured"] is True
    assert again["ingest_url"] == before["ingest_url"]


async def test_reset_of_an_unconfigured_slot_is_harmless(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    before = (await client.get("/api/slots/slot-002", headers=auth(token))).json()
    r = await client.post("/api/slots/slot-002/reset", headers=auth(token))
    assert r.status_code == 200, r.text
    assert r.json()["is_configured"] is False
    assert r.json()["version"] == before["version"] + 1


async def test_reset_of_a_foreign_or_unknown_slot_is_404(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    serg = await operator_token(client, settings.credentials_path, "serg")
    igor = await operator_token(client, settings.credentials_path, "igor")
    r = await configure_slot(client, igor, "slot-041", "local", "resize", {"width": 256})
    assert r.status_code == 200, r.text

    for slot_id in ("slot-041", "slot-999"):
        r = await client.post(f"/api/slots/{slot_id}/reset", headers=auth(serg))
        assert error_code(r, 404) == "slot_not_found"
    # igor's slot was not touched.
    theirs = (await client.get("/api/slots/slot-041", headers=auth(igor))).json()
    assert theirs["is_configured"] is True


async def test_reset_needs_a_token(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/slots/slot-001/reset")
    assert error_code(r, 401) == "unauthorized"
