"""The minimal operator API: login, providers, slots (list/filter/get/put) with the uniform error format."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.support.booth import configure_slot, credentials, operator_token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["code"])


async def test_login_gives_a_60_minute_bearer_token(client: httpx.AsyncClient, settings: Settings) -> None:
    creds = credentials(settings.credentials_path)
    r = await client.post("/api/login", json={"username": "igor", "password": creds["users"]["igor"]})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in_sec"] == 3600
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["name"] == "igor"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"username": "serg", "password": "wrong"}, 401, "invalid_credentials"),
        ({"username": "nobody", "password": "whatever"}, 401, "invalid_credentials"),
        ({"username": "serg"}, 400, "validation_error"),
        ({}, 400, "validation_error"),
    ],
)
async def test_login_failures(client: httpx.AsyncClient, body: dict[str, str], status: int, code: str) -> None:
    assert error_code(await client.post("/api/login", json=body), status) == code


async def test_login_with_non_json_body_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/login", content=b"username=serg", headers={"Content-Type": "text/plain"})
    assert error_code(r, 400) == "validation_error"


@pytest.mark.parametrize("header", [None, "Bearer not-a-jwt", "Basic c2VyZzpwdw=="])
async def test_protected_endpoints_need_a_valid_token(client: httpx.AsyncClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for path in ("/api/providers", "/api/slots", "/api/slots/slot-001"):
        code = error_code(await client.get(path, headers=headers), 401)
        assert code in {"unauthorized", "invalid_token"}


async def test_tampered_and_expired_tokens_are_refused(client: httpx.AsyncClient, container: Container) -> None:
    secret = container.credentials.jwt_secret
    expired = jwt.encode({"sub": "1", "name": "serg", "iat": 1, "exp": 2}, secret, algorithm="HS256")
    forged = jwt.encode(
        {"sub": "1", "name": "serg", "iat": 1, "exp": 2**31}, "an-attacker-guessed-key-of-32-bytes!", algorithm="HS256"
    )
    for token in (expired, forged):
        assert error_code(await client.get("/api/slots", headers=auth(token)), 401) == "invalid_token"


async def test_providers_list_the_catalog_with_schemas(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await client.get("/api/providers", headers=auth(token))
    assert r.status_code == 200
    local = next(p for p in r.json()["providers"] if p["id"] == "local")
    assert local["name"] == "Local (offline)"
    ops = {op["id"]: op for op in local["operations"]}
    assert set(ops) == {
        "reframe",
        "frame",
        "overlay",
        "white_balance",
        "resize",
        "extract_object",
        "remove_background",
        "replace_background",
        "smart_mask",
        "face_crop",
    }
    assert ops["reframe"]["name"] == "Reframe"
    assert "aspect_ratio" in ops["reframe"]["settings_schema"]["properties"]


async def test_each_operator_sees_their_own_40_slots(client: httpx.AsyncClient, settings: Settings) -> None:
    serg = await operator_token(client, settings.credentials_path, "serg")
    igor = await operator_token(client, settings.credentials_path, "igor")
    mine = (await client.get("/api/slots", headers=auth(serg))).json()
    theirs = (await client.get("/api/slots", headers=auth(igor))).json()
    assert mine["meta"]["total"] == 40
    assert [s["id"] for s in mine["data"]] == [f"slot-{n:03d}" for n in range(1, 41)]
    assert [s["id"] for s in theirs["data"]] == [f"slot-{n:03d}" for n in range(41, 81)]
    first = mine["data"][0]
    assert first["ingest_url"] == f"{settings.base_url}/ingest/slot-001"
    assert first["is_configured"] is False
    # Someone else's slot is not found, not forbidden: ids do not leak ownership.
    assert error_code(await client.get("/api/slots/slot-041", headers=auth(serg)), 404) == "slot_not_found"
    assert error_code(await client.get("/api/slots/slot-999", headers=auth(serg)), 404) == "slot_not_found"


async def test_put_then_get_and_filters(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(client, token, "slot-003", "local", "resize", {"width": 512})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "slot-003"
    got = (await client.get("/api/slots/slot-003", headers=auth(token))).json()
    assert (got["provider_id"], got["operation_id"], got["settings_json"]) == ("local", "resize", {"width": 512})
    assert got["is_configured"] is True
    await configure_slot(client, token, "slot-007", "local", "white_balance", {"strength": 0.5})

    async def ids(**params: str) -> list[str]:
        r = await client.get("/api/slots", params=params, headers=auth(token))
        return [s["id"] for s in r.json()["data"]]

    assert await ids(provider_id="local") == ["slot-003", "slot-007"]
    assert await ids(operation_id="resize") == ["slot-003"]
    assert await ids(search="white_bal") == ["slot-007"]  # names are "<operation> slot"
    assert await ids(search="slot-04") == ["slot-040"]
    assert await ids(search="%") == []  # wildcards are literal


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"provider_id": "nope", "operation_id": "reframe", "settings_json": {}}, "unknown_provider"),
        ({"provider_id": "local", "operation_id": "style_transfer", "settings_json": {}}, "unsupported_operation"),
        ({"provider_id": "local", "operation_id": "reframe", "settings_json": {}}, "invalid_settings"),
        (
            {"provider_id": "local", "operation_id": "reframe", "settings_json": {"aspect_ratio": "5:4"}},
            "invalid_settings",
        ),
        (
            {"provider_id": "local", "operation_id": "resize", "settings_json": {"width": 512, "colour": "red"}},
            "invalid_settings",
        ),
        (
            {
                "provider_id": "local",
                "operation_id": "frame",
                "settings_json": {"template_media_id": "6f1c1d7e-1f0a-4f52-9d39-6a1a6f0a1b2c"},
            },
            "media_not_found",
        ),
        (
            {"provider_id": "local", "operation_id": "frame", "settings_json": {"template_media_id": "not-a-uuid"}},
            "invalid_settings",
        ),
    ],
)
async def test_put_validation_errors_are_422_at_their_fields(
    client: httpx.AsyncClient, settings: Settings, body: dict[str, Any], code: str
) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await client.put("/api/slots/slot-001", json={"name": "x", **body}, headers=auth(token))
    assert error_code(r, 422) == code
    details = r.json()["error"]["details"]
    if code == "invalid_settings":
        assert details["fields"] and all("message" in f for f in details["fields"])
    got = (await client.get("/api/slots/slot-001", headers=auth(token))).json()
    assert got["is_configured"] is False  # nothing was saved


async def test_put_with_a_stale_version_is_409(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    seen = (await client.get("/api/slots/slot-001", headers=auth(token))).json()["version"]
    ok = await configure_slot(client, token, "slot-001", "local", "resize", {"width": 100}, version=seen)
    assert ok.status_code == 200
    stale = await configure_slot(client, token, "slot-001", "local", "resize", {"width": 200}, version=seen)
    assert error_code(stale, 409) == "version_conflict"


async def test_put_body_shape_errors_are_400(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await client.put("/api/slots/slot-001", json={"name": "x"}, headers=auth(token))
    assert error_code(r, 400) == "validation_error"
    fields = {f["field"] for f in r.json()["error"]["details"]["fields"]}
    assert {"provider_id", "operation_id"} <= fields
