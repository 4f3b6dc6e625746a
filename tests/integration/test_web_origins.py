"""The web UI deployed as a static site on its own origin: the operator API answers CORS for the origins in
WEB_ORIGINS, and only for them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from boothbridge.settings import Settings
from tests.support.booth import operator_token

UI_ORIGIN = "https://booth-ui.example.com"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"web_origins": f" {UI_ORIGIN}/ , https://second.example.com"}


def preflight(origin: str, method: str = "PUT") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,content-type",
    }


async def test_a_listed_origin_may_call_the_api_with_a_bearer_token(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    r = await client.options("/api/slots/slot-001", headers=preflight(UI_ORIGIN))
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == UI_ORIGIN
    assert "PUT" in r.headers["access-control-allow-methods"]
    assert "authorization" in r.headers["access-control-allow-headers"].lower()

    token = await operator_token(client, settings.credentials_path)
    r = await client.get("/api/slots", headers={"Origin": UI_ORIGIN, "Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == UI_ORIGIN
    # The slot page reads the test run's job id from a header on 504; a 429 on login carries Retry-After.
    exposed = r.headers["access-control-expose-headers"].lower()
    assert {"x-job-id", "retry-after", "x-processing-ms"} <= set(exposed.replace(" ", "").split(","))


async def test_other_origins_get_no_cors_grant(client: httpx.AsyncClient) -> None:
    r = await client.options("/api/slots/slot-001", headers=preflight("https://evil.example.com"))
    assert r.status_code == 400
    assert "access-control-allow-origin" not in r.headers
    r = await client.post(
        "/api/login", json={"username": "x", "password": "y"}, headers={"Origin": "https://evil.example.com"}
    )
    assert r.status_code == 401
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize("settings_overrides", [{}])
async def test_without_web_origins_the_api_grants_no_origin(client: httpx.AsyncClient) -> None:
    r = await client.options("/api/slots/slot-001", headers=preflight(UI_ORIGIN))
    assert "access-control-allow-origin" not in r.headers
