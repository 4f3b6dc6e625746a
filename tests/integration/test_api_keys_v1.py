"""API keys on the machine-client API (`/api/v1/*`, issue 15): a live key passes as `Authorization: Bearer <key>`
and names its operator; a missing, garbage, unknown or revoked key and an operator's JWT are all 401
`invalid_api_key` with `WWW-Authenticate: Bearer`; each key has its own rate limit (429 `rate_limited` with
`Retry-After`); `last_used_at` is written at most once a minute.

The product's /api/v1 routes belong to the task engine; here a test-only router (`/api/v1/test/whoami`, below) is
included in an api_v1 app built around the test's container, so the dependency is tested as the routes use it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from functions.api_v1.app import create_app
from functions.api_v1.deps import ClientDep
from tests.support.booth import operator_token

LIMIT = 3
whoami = APIRouter()


@whoami.get("/api/v1/test/whoami")
async def who(client: ClientDep) -> dict[str, Any]:
    return {"key_id": str(client.key_id), "owner_id": client.owner_id, "name": client.name}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"api_key_rate_limit": f"{LIMIT}/minute"}


@pytest.fixture
async def machine(settings: Settings, container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the api_v1 app (with the test router), sharing the emulator's container."""
    app = create_app(settings, container)
    app.include_router(whoami)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_key(client: httpx.AsyncClient, token: str, name: str) -> dict[str, Any]:
    r = await client.post("/api/keys", json={"name": name}, headers=bearer(token))
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    return made


async def owner_id(container: Container, username: str) -> int:
    async with container.engine.connect() as conn:
        found = (await conn.execute(text("SELECT id FROM users WHERE username = :u"), {"u": username})).scalar_one()
    return int(found)


def assert_refused(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert r.headers["WWW-Authenticate"] == "Bearer"


async def test_a_live_key_names_its_operator(
    client: httpx.AsyncClient, machine: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    igor = await new_key(client, await operator_token(client, settings.credentials_path, "igor"), "igor's kiosk")
    r = await machine.get("/api/v1/test/whoami", headers=bearer(igor["key"]))
    assert r.status_code == 200, r.text
    assert r.json() == {"key_id": igor["id"], "owner_id": await owner_id(container, "igor"), "name": "igor's kiosk"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer garbage"},
        {"Authorization": "Bearer bbk_" + "A" * 43},  # well-formed, unknown
        {"Authorization": "Bearer bbk_" + "A" * 44},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["missing", "empty", "garbage", "unknown", "too-long", "basic"],
)
async def test_no_live_key_is_401(machine: httpx.AsyncClient, headers: dict[str, str]) -> None:
    assert_refused(await machine.get("/api/v1/test/whoami", headers=headers))


async def test_a_malformed_key_costs_no_statement(machine: httpx.AsyncClient, container: Container) -> None:
    before = container.pool.statements
    assert_refused(await machine.get("/api/v1/test/whoami", headers=bearer("an operator's JWT.is.no.key")))
    assert container.pool.statements == before


async def test_an_operator_token_is_no_api_key(
    client: httpx.AsyncClient, machine: httpx.AsyncClient, settings: Settings
) -> None:
    token = await operator_token(client, settings.credentials_path)
    assert (await client.get("/api/keys", headers=bearer(token))).status_code == 200
    assert_refused(await machine.get("/api/v1/test/whoami", headers=bearer(token)))


async def test_a_revoked_key_is_refused_at_once(
    client: httpx.AsyncClient, machine: httpx.AsyncClient, settings: Settings
) -> None:
    token = await operator_token(client, settings.credentials_path)
    key = await new_key(client, token, "soon gone")
    assert (await machine.get("/api/v1/test/whoami", headers=bearer(key["key"]))).status_code == 200
    assert (await client.delete(f"/api/keys/{key['id']}", headers=bearer(token))).status_code == 204
    assert_refused(await machine.get("/api/v1/test/whoami", headers=bearer(key["key"])))


async def test_each_key_has_its_own_rate_limit(
    client: httpx.AsyncClient, machine: httpx.AsyncClient, settings: Settings
) -> None:
    token = await operator_token(client, settings.credentials_path)
    first, second = (await new_key(client, token, "first")), (await new_key(client, token, "second"))
    for _ in range(LIMIT):
        assert (await machine.get("/api/v1/test/whoami", headers=bearer(first["key"]))).status_code == 200
    over = await machine.get("/api/v1/test/whoami", headers=bearer(first["key"]))
    assert over.status_code == 429, over.text
    error = over.json()["error"]
    assert error["code"] == "rate_limited"
    retry_after = int(over.headers["Retry-After"])
    assert 1 <= retry_after <= 60 and error["details"] == {"retry_after_sec": retry_after}
    assert (await machine.get("/api/v1/test/whoami", headers=bearer(second["key"]))).status_code == 200


async def test_last_used_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient, machine: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    key = await new_key(client, token, "touched")

    async def last_used() -> Any:
        async with container.engine.connect() as conn:
            query = text("SELECT last_used_at FROM api_keys WHERE id = :id")
            return (await conn.execute(query, {"id": key["id"]})).scalar_one()

    assert await last_used() is None
    assert (await machine.get("/api/v1/test/whoami", headers=bearer(key["key"]))).status_code == 200
    first = await last_used()
    assert first is not None
    assert (await machine.get("/api/v1/test/whoami", headers=bearer(key["key"]))).status_code == 200
    assert await last_used() == first, "not written again within the minute"

    async with container.engine.begin() as conn:
        await conn.execute(
            text("UPDATE api_keys SET last_used_at = now() - interval '61 seconds' WHERE id = :id"), {"id": key["id"]}
        )
    aged = await last_used()
    assert (await machine.get("/api/v1/test/whoami", headers=bearer(key["key"]))).status_code == 200
    assert await last_used() > aged
    listed = (await client.get("/api/keys", headers=bearer(token))).json()["data"]
    assert listed[0]["last_used_at"] is not None


async def test_the_emulator_serves_the_machine_client_api(client: httpx.AsyncClient) -> None:
    doc = await client.get("/api/v1/openapi.json")
    assert doc.status_code == 200 and doc.json()["info"]["title"] == "boothbridge machine-client API"
    missing = await client.get("/api/v1/no-such-route")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_the_document_names_the_key_as_a_bearer_scheme(machine: httpx.AsyncClient) -> None:
    doc = (await machine.get("/api/v1/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    assert doc["paths"]["/api/v1/test/whoami"]["get"]["security"] == [{"ApiKey": []}]
    assert "ErrorBody" in doc["components"]["schemas"]
