"""The settings page's API: ingest password, encrypted provider keys, T_SYNC_RESPONSE, result TTL, media cache."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container, build_container
from boothbridge.platform.provision import apply_credentials
from boothbridge.settings import Settings
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"gemini_api_key": "AIzaEnvironmentKey0001", "t_sync_response": 10.0}


async def _auth(client: httpx.AsyncClient, settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {await operator_token(client, settings.credentials_path)}"}


async def test_keys_are_masked_stored_encrypted_and_override_the_environment(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    headers = await _auth(client, settings)
    before = (await client.get("/api/settings", headers=headers)).json()
    assert before["provider_keys"]["gemini"] == {"configured": True, "source": "environment", "masked": ["AIza…0001"]}
    assert before["provider_keys"]["turbotext"]["configured"] is False

    r = await client.put(
        "/api/settings",
        json={"gemini_api_key": "AIzaSettingsKeyAAAA1111, AIzaSettingsKeyBBBB2222", "turbotext_api_key": "tt-secret-9"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    keys = r.json()["provider_keys"]
    assert keys["gemini"] == {"configured": True, "source": "settings", "masked": ["AIza…1111", "AIza…2222"]}
    assert keys["turbotext"]["masked"] == ["tt-s…et-9"]
    assert "AIzaSettingsKeyAAAA1111" not in r.text

    async with container.engine.connect() as conn:
        raw = (await conn.execute(text("SELECT value::text FROM app_settings WHERE key = 'provider_keys'"))).scalar()
    assert raw and "AIzaSettingsKey" not in raw and "tt-secret" not in raw  # encrypted at rest
    assert container.providers["gemini"]._keys == ["AIzaSettingsKeyAAAA1111", "AIzaSettingsKeyBBBB2222"]  # type: ignore[attr-defined]

    # Another process (another worker, another Lambda) picks the stored keys up when it starts.
    other = await build_container(settings, listen=False)
    try:
        assert other.settings_store.values.keys["turbotext"] == ["tt-secret-9"]
    finally:
        await other.close()

    cleared = await client.put("/api/settings", json={"gemini_api_key": ""}, headers=headers)
    assert cleared.json()["provider_keys"]["gemini"]["source"] == "environment"


async def test_new_ingest_password_works_at_once_and_survives_a_restart(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    headers = await _auth(client, settings)
    await configure_slot(client, headers["Authorization"][7:], "slot-001", "local", "resize", {"width": 32})
    old = credentials(settings.credentials_path)["ingest_password"]
    assert (await post_photo(client, "slot-001", jpeg(), old)).status_code == 200

    r = await client.put("/api/settings", json={"ingest_password": "new-booth-pass"}, headers=headers)
    assert r.status_code == 200
    assert (await post_photo(client, "slot-001", jpeg(100, 100), old)).status_code == 401
    assert (await post_photo(client, "slot-001", jpeg(101, 100), "new-booth-pass")).status_code == 200

    await apply_credentials(container.engine, container.credentials)  # what a restart does
    assert (await post_photo(client, "slot-001", jpeg(102, 100), "new-booth-pass")).status_code == 200


async def test_t_sync_response_and_result_ttl_apply(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    headers = await _auth(client, settings)
    r = await client.put("/api/settings", json={"t_sync_response": 5, "result_ttl_sec": 600}, headers=headers)
    assert (r.json()["t_sync_response"], r.json()["result_ttl_sec"]) == (5, 600)
    await configure_slot(client, headers["Authorization"][7:], "slot-001", "sleepy", "echo", {"delay_sec": 7})
    started = time.monotonic()
    answer = await post_photo(client, "slot-001", jpeg(), credentials(settings.credentials_path)["ingest_password"])
    assert answer.status_code == 504
    assert 5 <= time.monotonic() - started < 7  # the new T_SYNC_RESPONSE, not the 10 s of the environment
    assert answer.json()["error"]["details"]["t_sync_response"] == 5

    await configure_slot(client, headers["Authorization"][7:], "slot-002", "local", "resize", {"width": 40})
    ok = await post_photo(client, "slot-002", jpeg(), credentials(settings.credentials_path)["ingest_password"])
    async with container.engine.connect() as conn:
        ttl = (
            await conn.execute(
                text(
                    "SELECT extract(epoch FROM expires_at - created_at) FROM media_objects WHERE kind = 'result'"
                    " AND job_id = :id"
                ),
                {"id": ok.headers["x-job-id"]},
            )
        ).scalar_one()
    assert 590 <= float(ttl) <= 610


async def test_clear_media_cache_deletes_results(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    headers = await _auth(client, settings)
    await configure_slot(client, headers["Authorization"][7:], "slot-001", "local", "resize", {"width": 32})
    pw = credentials(settings.credentials_path)["ingest_password"]
    photo = jpeg()
    first = await post_photo(client, "slot-001", photo, pw)
    r = await client.post("/api/settings/clear_media_cache", headers=headers)
    assert r.status_code == 200 and r.json() == {"deleted": 1}
    again = await post_photo(client, "slot-001", photo, pw)  # no kept result any more: processed again
    assert again.status_code == 200 and again.headers["x-job-id"] != first.headers["x-job-id"]


@pytest.mark.parametrize(
    "body",
    [{"t_sync_response": 121}, {"t_sync_response": 1}, {"result_ttl_sec": 10}, {"ingest_password": "abc"}],
)
async def test_invalid_settings_are_400(client: httpx.AsyncClient, settings: Settings, body: dict[str, Any]) -> None:
    r = await client.put("/api/settings", json=body, headers=await _auth(client, settings))
    assert r.status_code == 400 and r.json()["error"]["code"] == "validation_error"


async def test_settings_need_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/settings")).status_code == 401
    assert (await client.post("/api/settings/clear_media_cache")).status_code == 401
