"""API keys on the operator API (issue 15): an operator creates, lists and revokes machine-client keys with a JWT;
the key is in the creation's answer only and the database holds its sha256, never the key; another operator can
neither see nor revoke them; bad names are 422 `invalid_name`; without a token, 401."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest
from sqlalchemy import text

from boothbridge.accounts.api_keys import MAX_LIVE_KEYS
from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.support.booth import operator_token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create(client: httpx.AsyncClient, token: str, name: str) -> httpx.Response:
    return await client.post("/api/keys", json={"name": name}, headers=bearer(token))


async def test_a_key_is_shown_once_and_stored_hashed(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await create(client, token, "  Gallery kiosk  ")
    assert r.status_code == 201, r.text
    made = r.json()
    assert set(made) == {"id", "name", "prefix", "key", "created_at"}
    assert made["name"] == "Gallery kiosk"  # trimmed
    key = made["key"]
    assert key.startswith("bbk_") and len(key) == 47 and made["prefix"] == key[:12]

    listed = await client.get("/api/keys", headers=bearer(token))
    assert listed.status_code == 200
    [entry] = listed.json()["data"]
    assert entry == {
        "id": made["id"],
        "name": "Gallery kiosk",
        "prefix": key[:12],
        "created_at": made["created_at"],
        "last_used_at": None,
        "revoked_at": None,
    }
    assert key not in listed.text and key[12:] not in listed.text

    async with container.engine.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM api_keys"))).mappings().one()
        dump = (await conn.execute(text("SELECT row_to_json(k)::text FROM api_keys k"))).scalar_one()
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key[12:] not in dump, "the database holds no key in clear"


async def test_keys_are_the_operators_own(client: httpx.AsyncClient, settings: Settings) -> None:
    serg = await operator_token(client, settings.credentials_path, "serg")
    igor = await operator_token(client, settings.credentials_path, "igor")
    made = (await create(client, serg, "serg's")).json()
    await create(client, igor, "igor's")

    igor_list = (await client.get("/api/keys", headers=bearer(igor))).json()["data"]
    assert [k["name"] for k in igor_list] == ["igor's"]

    refused = await client.delete(f"/api/keys/{made['id']}", headers=bearer(igor))
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "api_key_not_found"
    serg_list = (await client.get("/api/keys", headers=bearer(serg))).json()["data"]
    assert [(k["name"], k["revoked_at"]) for k in serg_list] == [("serg's", None)]


async def test_revoking_marks_the_key_and_again_is_fine(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    first = (await create(client, token, "first")).json()
    second = (await create(client, token, "second")).json()

    r = await client.delete(f"/api/keys/{first['id']}", headers=bearer(token))
    assert r.status_code == 204 and r.content == b""
    listed = {k["name"]: k for k in (await client.get("/api/keys", headers=bearer(token))).json()["data"]}
    assert listed["first"]["revoked_at"] is not None and listed["second"]["revoked_at"] is None
    assert [k["name"] for k in (await client.get("/api/keys", headers=bearer(token))).json()["data"]] == [
        "second",
        "first",
    ], "newest first"

    again = await client.delete(f"/api/keys/{first['id']}", headers=bearer(token))
    assert again.status_code == 204
    after = {k["name"]: k for k in (await client.get("/api/keys", headers=bearer(token))).json()["data"]}
    assert after["first"]["revoked_at"] == listed["first"]["revoked_at"], "the first revocation's time stays"
    assert second["id"] != first["id"]


@pytest.mark.parametrize("key_id", ["9b2f6a4e-0c1d-4e8f-a3b5-7d9e1f2a4c6b", "not-a-uuid", "123"])
async def test_revoking_an_unknown_key_is_404(client: httpx.AsyncClient, settings: Settings, key_id: str) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await client.delete(f"/api/keys/{key_id}", headers=bearer(token))
    assert r.status_code == 404 and r.json()["error"]["code"] == "api_key_not_found"


@pytest.mark.parametrize(
    "name",
    ["", "   ", "x" * 101, "tab\there", "line\nbreak", "nul\x00", "bell\x07", "line\u2028separator", "  " + "y" * 101],
)
async def test_a_bad_name_is_422(client: httpx.AsyncClient, settings: Settings, name: str) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await create(client, token, name)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_name"
    assert [f["field"] for f in error["details"]["fields"]] == ["body.name"]
    assert (await client.get("/api/keys", headers=bearer(token))).json()["data"] == []


async def test_a_name_of_100_characters_after_trimming_is_kept(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    name = "Ünïcode ключ 🔑 " + "z" * 85
    r = await create(client, token, f"\t{name} ")
    assert r.status_code == 201, r.text
    assert r.json()["name"] == name and len(name) == 100


@pytest.mark.parametrize("body", [{}, {"name": 5}, {"name": None}, ["name"]])
async def test_a_body_without_a_string_name_is_400(client: httpx.AsyncClient, settings: Settings, body: object) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await client.post("/api/keys", json=body, headers=bearer(token))
    assert r.status_code == 400 and r.json()["error"]["code"] == "validation_error"


async def test_the_routes_need_an_operator_token(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    made = (await create(client, token, "mine")).json()
    for method, path in (("POST", "/api/keys"), ("GET", "/api/keys"), ("DELETE", f"/api/keys/{made['id']}")):
        missing = await client.request(method, path, json={"name": "x"})
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        # An API key is no operator token.
        with_key = await client.request(method, path, json={"name": "x"}, headers=bearer(made["key"]))
        assert with_key.status_code == 401 and with_key.json()["error"]["code"] == "invalid_token"
    assert [k["revoked_at"] for k in (await client.get("/api/keys", headers=bearer(token))).json()["data"]] == [None]


async def test_live_keys_are_limited_per_operator(client: httpx.AsyncClient, settings: Settings) -> None:
    serg = await operator_token(client, settings.credentials_path, "serg")
    igor = await operator_token(client, settings.credentials_path, "igor")
    # Concurrent creations cannot overshoot the limit (they are serialised per operator).
    answers = await asyncio.gather(*(create(client, serg, f"key {i}") for i in range(MAX_LIVE_KEYS + 3)))
    assert sorted(r.status_code for r in answers) == [201] * MAX_LIVE_KEYS + [409] * 3
    refused = next(r for r in answers if r.status_code == 409).json()["error"]
    assert refused["code"] == "too_many_api_keys" and refused["details"] == {"limit": MAX_LIVE_KEYS}

    assert (await create(client, igor, "igor's own")).status_code == 201, "the limit is per operator"
    some = next(r for r in answers if r.status_code == 201).json()
    assert (await client.delete(f"/api/keys/{some['id']}", headers=bearer(serg))).status_code == 204
    assert (await create(client, serg, "after a revoke")).status_code == 201, "a revoked key frees its place"
    assert (await create(client, serg, "one too many")).status_code == 409
