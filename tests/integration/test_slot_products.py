"""A booth slot runs only operations that make an image (issue 15), over the operator API with real PostgreSQL:
`PUT /api/slots/{id}` naming fal's `image_to_video` (a video) or `finetune` (a record) as a step or an alternative
is 422 `operation_not_for_slots` at that call's `operation_id` and stores nothing; a test run of such an unsaved
configuration is refused the same way before any job; `GET /api/providers` says what each operation makes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.support.booth import jpeg, operator_token

VIDEO = {"provider_id": "fal", "operation_id": "image_to_video", "settings_json": {"prompt": "waves"}}
FINETUNE = {"provider_id": "fal", "operation_id": "finetune", "settings_json": {"data_url": "https://e.com/a.zip"}}
IMAGE = {"provider_id": "local", "operation_id": "white_balance", "settings_json": {}}


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _refused(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == "operation_not_for_slots"
    return dict(body["error"]["details"])


@pytest.mark.parametrize(
    ("body", "field", "produces"),
    [
        ({**VIDEO}, "operation_id", "video"),
        ({"steps": [{**FINETUNE}]}, "steps/0/operation_id", "record"),
        ({"steps": [IMAGE, {**IMAGE, "alternatives": [VIDEO]}]}, "steps/1/alternatives/0/operation_id", "video"),
    ],
)
async def test_a_slot_naming_an_operation_that_makes_no_image_is_422_and_nothing_is_stored(
    client: httpx.AsyncClient, settings: Settings, container: Container, body: dict[str, Any], field: str, produces: str
) -> None:
    token = await operator_token(client, settings.credentials_path)

    r = await client.put("/api/slots/slot-003", json={"name": "Video", **body}, headers=_auth(token))

    assert _refused(r) == {"field": field, "produces": produces}
    got = (await client.get("/api/slots/slot-003", headers=_auth(token))).json()
    assert (got["is_configured"], got["steps"], got["version"]) == (False, [], 1)
    assert got["name"] != "Video"


async def test_a_test_run_of_such_a_configuration_is_refused_before_any_job(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)

    r = await client.post(
        "/api/slots/slot-004/test",
        files={"file": ("t.jpg", jpeg(64, 48), "image/jpeg")},
        data={"config": json.dumps({"steps": [IMAGE, VIDEO]})},
        headers=_auth(token),
    )

    assert _refused(r) == {"field": "steps/1/operation_id", "produces": "video"}
    async with container.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM jobs"))).scalar_one() == 0


async def test_the_providers_answer_says_what_each_operation_makes(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = await operator_token(client, settings.credentials_path)

    r = await client.get("/api/providers", headers=_auth(token))

    assert r.status_code == 200, r.text
    made = {(p["id"], op["id"]): op["produces"] for p in r.json()["providers"] for op in p["operations"]}
    assert {call: what for call, what in made.items() if what != "image"} == {
        ("fal", "image_to_video"): "video",
        ("fal", "finetune"): "record",
    }
    assert made[("fal", "upscale")] == made[("local", "frame")] == "image"
