"""A NUL character in a `/api/v1` URL (issue 15): a path or declared query value holding one is 400
`validation_error` in the uniform error format, naming each such value (`path.<name>`, `query.<name>`), before
authentication or any database query; never a 500. The check (`boothbridge.http.url_checks.no_nul_in_url`) is the
operator API's too, which keeps refusing the same way."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from boothbridge.settings import Settings
from tests.support.booth import operator_token

BACKGROUND = {"imageUrl": "https://example.com/bg.png"}


async def _key(client: httpx.AsyncClient, settings: Settings) -> dict[str, str]:
    token = await operator_token(client, settings.credentials_path)
    r = await client.post("/api/keys", json={"name": "nul test"}, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}"}


def _fields(r: httpx.Response) -> list[str]:
    assert r.status_code == 400, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == "validation_error"
    return [f["field"] for f in body["error"]["details"]["fields"]]


@pytest.mark.parametrize(
    ("method", "url", "fields"),
    [
        ("GET", "/api/v1/tasks/a%00b", ["path.task_id"]),
        ("POST", "/api/v1/tasks/%00/cancel", ["path.task_id"]),
        ("GET", "/api/v1/tasks/x%00/outputs/0", ["path.task_id"]),
        ("GET", "/api/v1/tasks?limit=1%00", ["query.limit"]),
        ("GET", "/api/v1/tasks/a%00?limit=%002", ["path.task_id"]),  # `limit` is not this route's: ignored
        ("GET", "/api/v1/task/ab%00cd/status", ["path.aige_task_id"]),
        ("PUT", "/api/v1/avatar/av%00tar/background", ["path.avatar_id"]),
    ],
)
@pytest.mark.parametrize("authenticated", [True, False], ids=["key", "no-key"])
async def test_a_nul_in_a_path_or_query_value_is_400_naming_it(
    client: httpx.AsyncClient, settings: Settings, method: str, url: str, fields: list[str], authenticated: bool
) -> None:
    headers = await _key(client, settings) if authenticated else {}
    body = BACKGROUND if method == "PUT" else None

    r = await client.request(method, url, headers=headers, json=body)

    assert _fields(r) == fields


async def test_the_same_urls_without_the_nul_are_answered_by_their_routes(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    key = await _key(client, settings)
    assert (await client.get("/api/v1/tasks/ab", headers=key)).json()["error"]["code"] == "task_not_found"
    assert (await client.get("/api/v1/tasks?limit=1", headers=key)).status_code == 200
    assert (await client.get("/api/v1/tasks/ab")).status_code == 401


async def test_the_operator_api_refuses_a_nul_as_before(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await client.get("/api/slots/slot%00-1", headers={"Authorization": f"Bearer {token}"})
    assert _fields(r) == ["path.slot_id"]
