"""Slots as pipelines over the operator API (issue 14), real PostgreSQL: `PUT /api/slots/{id}` in the `steps`
shape and the seed-003 shape, `GET` answering both, every 422 of a pipeline at its field path with nothing saved,
the images a pipeline names, reset, slots from before the migration, the chain's typical time against the
booth's wait, and a test run of an unsaved multi-step configuration."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from alembic import command
from PIL import Image
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.catalog import Catalog
from boothbridge.db.engine import create_engine, libpq_url
from boothbridge.db.migrate import alembic_config, upgrade_to_head
from boothbridge.settings import Settings
from boothbridge.slots.service import SlotService
from tests.support.booth import configure_slot, jpeg, operator_token, png

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MISSING = "6f1c1d7e-1f0a-4f52-9d39-6a1a6f0a1b2c"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return dict(body["error"])


def call(provider_id: str, operation_id: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"provider_id": provider_id, "operation_id": operation_id, "settings_json": settings}


def step(provider_id: str, operation_id: str, settings: dict[str, Any], *alts: Any, optional: bool = False) -> Any:
    return {**call(provider_id, operation_id, settings), "alternatives": list(alts), "optional": optional}


async def put(client: httpx.AsyncClient, token: str, slot_id: str, **body: Any) -> httpx.Response:
    return await client.put(f"/api/slots/{slot_id}", json={"name": "Chain", **body}, headers=auth(token))


async def get(client: httpx.AsyncClient, token: str, slot_id: str) -> dict[str, Any]:
    r = await client.get(f"/api/slots/{slot_id}", headers=auth(token))
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def upload(client: httpx.AsyncClient, token: str, data: bytes) -> str:
    r = await client.post(
        "/api/media/register",
        files={"file": ("logo.png", data, "image/png")},
        data={"purpose": "template"},
        headers=auth(token),
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def test_a_steps_put_is_answered_in_both_shapes(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    steps = [step("local", "reframe", {"aspect_ratio": "1:1"}), step("local", "resize", {"width": 256})]
    r = await put(client, token, "slot-004", steps=steps)
    assert r.status_code == 200, r.text
    got = await get(client, token, "slot-004")
    assert (got["provider_id"], got["operation_id"], got["settings_json"]) == (
        "local",
        "reframe",
        {"aspect_ratio": "1:1"},
    )
    assert got["steps"] == steps
    assert (got["finishing"], got["variants"], got["variant_field"]) == ({}, {}, None)
    assert (got["typical_sec"], got["exceeds_wait"], got["is_configured"]) == (2.0, False, True)  # local: 1 s each
    # The listing filters by step 1.
    r = await client.get("/api/slots", params={"operation_id": "reframe"}, headers=auth(token))
    assert [s["id"] for s in r.json()["data"]] == ["slot-004"]
    assert r.json()["data"][0]["steps"] == steps


async def test_a_seed_003_put_is_one_step(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    r = await configure_slot(client, token, "slot-003", "local", "resize", {"width": 512}, failure_policy="original")
    assert r.status_code == 200, r.text
    got = await get(client, token, "slot-003")
    assert (got["provider_id"], got["operation_id"], got["settings_json"]) == ("local", "resize", {"width": 512})
    assert got["steps"] == [step("local", "resize", {"width": 512})]
    assert got["failure_policy"] == "original" and got["version"] == 2
    # Sending the GET's answer back unchanged (both shapes, equal) saves the same slot.
    keep = ("name", "provider_id", "operation_id", "settings_json", "steps", "finishing", "variants", "variant_field")
    again = await client.put("/api/slots/slot-003", json={k: got[k] for k in keep}, headers=auth(token))
    assert again.status_code == 200, again.text
    assert (await get(client, token, "slot-003"))["steps"] == got["steps"]


async def test_a_three_step_slot_with_alternatives_finishing_and_variants_round_trips(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    logo = await upload(client, token, png(64, 64))
    reference = await upload(client, token, png(32, 32))
    steps = [
        step("local", "reframe", {"aspect_ratio": "3:2"}),
        step(
            "gemini",
            "change_image",
            {"prompt": "winter, {name}"},
            call("turbotext", "change_image", {"prompt": "winter", "strength": 30}),
            call("gemini", "style_transfer", {"reference_media_id": reference}),
        ),
        step("local", "resize", {"width": 2400}, optional=True),
    ]
    finishing = {"width": 1800, "height": 1200, "fit": "fill", "sharpen": 0.4, "overlay_media_id": logo}
    finishing |= {"format": "jpeg", "quality": 88, "max_bytes": 1_500_000}
    variants = {"winter": {"1": {"prompt": "snow"}}, "summer": {"1": {"prompt": "sun"}, "0": {"aspect_ratio": "1:1"}}}
    r = await put(
        client, token, "slot-005", steps=steps, finishing=finishing, variants=variants, variant_field="survey1"
    )
    assert r.status_code == 200, r.text
    got = await get(client, token, "slot-005")
    assert (got["steps"], got["finishing"], got["variants"], got["variant_field"]) == (
        steps,
        finishing,
        variants,
        "survey1",
    )
    assert got["typical_sec"] == 1 + 12 + 1  # own calls only: local, gemini, local
    async with container.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT provider_id, operation_id, settings_json, steps FROM slots WHERE id = 'slot-005'")
            )
        ).one()
    assert (row.provider_id, row.operation_id, row.settings_json, row.steps) == (
        "local",
        "reframe",
        {"aspect_ratio": "3:2"},
        steps,
    )


LOCAL = step("local", "white_balance", {"strength": 0.5})


@pytest.mark.parametrize(
    ("body", "code", "fields"),
    [
        (
            {"steps": [LOCAL, step("local", "resize", {"width": 64}, call("nope", "resize", {}))]},
            "unknown_provider",
            "steps/1/alternatives/0/provider_id",
        ),
        (
            {"steps": [LOCAL, step("local", "reframe", {"aspect_ratio": "5:1"})]},
            "invalid_settings",
            ["steps/1/settings_json/aspect_ratio"],
        ),
        ({"steps": [LOCAL], "finishing": {"fit": "stretch"}}, "invalid_finishing", ["finishing/fit"]),
        ({"steps": [LOCAL], "variants": {"w": {"1": {"strength": 0.1}}}}, "invalid_pipeline", ["variants/w/1"]),
        ({"steps": [LOCAL], "variants": {"w": {"0": {"strength": 7}}}}, "invalid_settings", ["variants/w/0/strength"]),
        ({"steps": [LOCAL] * 9}, "invalid_pipeline", ["steps"]),
        (
            {"steps": [step("local", "white_balance", {}, *[call("local", "white_balance", {})] * 4)]},
            "invalid_pipeline",
            ["steps/0/alternatives"],
        ),
        ({"steps": [LOCAL], "variant_field": "x" * 101}, "invalid_pipeline", ["variant_field"]),
        ({"steps": [LOCAL], "provider_id": "gemini"}, "invalid_pipeline", ["provider_id"]),
        (
            {"steps": [step("local", "white_balance", {}, call("local", "frame", {"template_media_id": MISSING}))]},
            "media_not_found",
            ["steps/0/alternatives/0/settings_json/template_media_id"],
        ),
        (
            {"steps": [LOCAL], "finishing": {"overlay_media_id": MISSING}},
            "media_not_found",
            ["finishing/overlay_media_id"],
        ),
    ],
)
async def test_every_pipeline_problem_is_422_at_its_field_and_nothing_is_saved(
    client: httpx.AsyncClient, settings: Settings, body: dict[str, Any], code: str, fields: Any
) -> None:
    token = await operator_token(client, settings.credentials_path)
    refused = error(await put(client, token, "slot-006", **body), 422)
    assert refused["code"] == code
    if isinstance(fields, str):
        assert refused["details"]["field"] == fields
    else:
        assert [f["field"] for f in refused["details"]["fields"]] == fields
    got = await get(client, token, "slot-006")
    assert (got["is_configured"], got["steps"], got["version"]) == (False, [], 1)


async def test_body_shape_errors_stay_400(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    refused = error(await put(client, token, "slot-006", steps=[{"provider_id": "local"}]), 400)
    assert refused["code"] == "validation_error"
    assert [f["field"] for f in refused["details"]["fields"]] == ["steps.0.operation_id"]
    refused = error(await put(client, token, "slot-006", variants={"w": {"0": "snow"}}), 400)
    assert refused["code"] == "validation_error"
    # `optional` is a JSON boolean: "yes" (or 1) is not quietly taken as true
    for loose in ("yes", 1, "true"):
        body = [{"provider_id": "local", "operation_id": "white_balance", "settings_json": {}, "optional": loose}]
        refused = error(await put(client, token, "slot-006", steps=body), 400)
        assert [f["field"] for f in refused["details"]["fields"]] == ["steps.0.optional"], loose


async def test_an_image_from_before_owners_named_anywhere_in_a_slot_may_be_named_again(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    serg = await operator_token(client, settings.credentials_path)
    igor = await operator_token(client, settings.credentials_path, "igor")
    logo = await upload(client, serg, png(48, 48))
    steps = [step("local", "white_balance", {}, call("local", "frame", {"template_media_id": logo}))]
    assert (await put(client, serg, "slot-007", steps=steps)).status_code == 200
    async with container.engine.begin() as conn:  # as an upload from before owners were recorded
        await conn.execute(text("UPDATE media_objects SET owner_id = NULL WHERE id = :id"), {"id": logo})

    # Named by one of serg's slots (in an alternative): serg may name it again, here as the overlay.
    r = await put(client, serg, "slot-008", steps=[LOCAL], finishing={"overlay_media_id": logo})
    assert r.status_code == 200, r.text
    # igor's slots name it nowhere: for igor it does not exist.
    refused = error(await put(client, igor, "slot-041", steps=[LOCAL], finishing={"overlay_media_id": logo}), 422)
    assert refused["code"] == "media_not_found"
    # Once no slot of serg's names it (both reset), serg may not either.
    for slot_id in ("slot-007", "slot-008"):
        assert (await client.post(f"/api/slots/{slot_id}/reset", headers=auth(serg))).status_code == 200
    refused = error(await put(client, serg, "slot-008", steps=[LOCAL], finishing={"overlay_media_id": logo}), 422)
    assert refused["details"]["fields"] == [{"field": "finishing/overlay_media_id", "message": "no such media object"}]


async def test_reset_clears_the_whole_pipeline(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    steps = [LOCAL, step("local", "resize", {"width": 64}, call("local", "resize", {"height": 64}), optional=True)]
    r = await put(
        client, token, "slot-009", steps=steps, finishing={"width": 10}, variants={"a": {}}, variant_field="f"
    )
    assert r.status_code == 200, r.text
    reset = await client.post("/api/slots/slot-009/reset", headers=auth(token))
    assert reset.status_code == 200, reset.text
    answer = reset.json()
    assert (answer["steps"], answer["finishing"], answer["variants"], answer["variant_field"]) == ([], {}, {}, None)
    assert (answer["provider_id"], answer["is_configured"], answer["typical_sec"]) == (None, False, 0)
    async with container.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT steps, finishing, variants, variant_field, settings_json FROM slots WHERE id = 'slot-009'")
            )
        ).one()
    assert tuple(row) == ([], {}, {}, None, {})


async def test_a_row_with_no_steps_reads_as_its_one_step(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    async with container.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE slots SET provider_id = 'local', operation_id = 'resize', settings_json = '{\"width\": 99}',"
                " steps = '[]' WHERE id = 'slot-010'"
            )
        )
    got = await get(client, token, "slot-010")
    assert got["steps"] == [step("local", "resize", {"width": 99})]
    assert (got["is_configured"], got["typical_sec"]) == (True, 1.0)


async def test_a_chain_longer_than_the_booth_s_wait_is_flagged(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    gemini = step("gemini", "change_image", {"prompt": "p"}, call("turbotext", "change_image", {"prompt": "p"}))
    assert (await put(client, token, "slot-011", steps=[gemini, gemini])).status_code == 200
    got = await get(client, token, "slot-011")
    assert (got["typical_sec"], got["exceeds_wait"]) == (24.0, 24.0 > settings.t_sync_response)
    r = await client.put("/api/settings", json={"t_sync_response": 20}, headers=auth(token))
    assert r.status_code == 200, r.text
    got = await get(client, token, "slot-011")
    assert (got["typical_sec"], got["exceeds_wait"]) == (24.0, True)
    r = await client.put("/api/settings", json={"t_sync_response": 30}, headers=auth(token))
    assert r.status_code == 200, r.text
    assert (await get(client, token, "slot-011"))["exceeds_wait"] is False


async def test_a_test_run_of_an_unsaved_two_step_chain_shows_each_step_s_image(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = await operator_token(client, settings.credentials_path)
    config = {"steps": [step("local", "reframe", {"aspect_ratio": "1:1"}), step("local", "resize", {"width": 128})]}
    r = await client.post(
        "/api/slots/slot-012/test",
        files={"file": ("t.jpg", jpeg(600, 400), "image/jpeg")},
        data={"config": json.dumps(config)},
        headers=auth(token),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(s["index"], s["alternative"], s["operation_id"], s["status"]) for s in body["steps"]] == [
        (0, 0, "reframe", "succeeded"),
        (1, 0, "resize", "succeeded"),
    ]
    sizes = []
    for s in body["steps"]:
        served = await client.get(s["image_url"].removeprefix(settings.base_url))
        assert served.status_code == 200
        sizes.append(Image.open(io.BytesIO(served.content)).size)
    assert sizes == [(400, 400), (128, 128)]
    final = await client.get(body["result_url"].removeprefix(settings.base_url))
    assert Image.open(io.BytesIO(final.content)).size == (128, 128)
    assert (await get(client, token, "slot-012"))["is_configured"] is False  # a test saves nothing


async def test_a_test_run_refuses_an_invalid_pipeline_before_any_job(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    config = json.dumps({"steps": [step("local", "reframe", {"aspect_ratio": "1:1"})], "finishing": {"width": -1}})
    r = await client.post(
        "/api/slots/slot-012/test",
        files={"file": ("t.jpg", jpeg(100, 100), "image/jpeg")},
        data={"config": config},
        headers=auth(token),
    )
    refused = error(r, 422)
    assert (refused["code"], refused["details"]["fields"][0]["field"]) == ("invalid_finishing", "finishing/width")
    async with container.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM jobs"))).scalar() == 0


# ---- the migration carries slots over -------------------------------------------------------------------------


@pytest.fixture
def database_at_0009(pg_admin_url: str) -> Iterator[str]:
    name = f"bb_slots_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    head, _, query = pg_admin_url.partition("?")
    url = f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    try:
        command.upgrade(alembic_config(url), "0009")
        yield url
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_migration_makes_existing_slots_one_step_pipelines(database_at_0009: str) -> None:
    with psycopg.connect(libpq_url(database_at_0009), autocommit=True) as conn:
        conn.execute("INSERT INTO users (id, username, hashed_password) VALUES (7, 'old', 'x')")
        conn.execute(
            "INSERT INTO slots (id, user_id, name, provider_id, operation_id, settings_json, failure_policy)"
            " VALUES ('slot-old', 7, 'Old', 'local', 'reframe', '{\"aspect_ratio\": \"4:3\"}', 'original'),"
            " ('slot-free', 7, '', NULL, NULL, '{}', 'error')"
        )
    upgrade_to_head(database_at_0009)

    async def read() -> tuple[Any, Any]:
        engine = create_engine(database_at_0009, pool_size=1)
        try:
            service = SlotService(engine, Catalog.load(PROJECT_ROOT / "configs" / "providers.json"))
            return await service.get(7, "slot-old"), await service.get(7, "slot-free")
        finally:
            await engine.dispose()

    old, free = asyncio.run(read())
    assert old.steps == [step("local", "reframe", {"aspect_ratio": "4:3"})]
    assert (old.provider_id, old.settings_json, old.failure_policy) == ("local", {"aspect_ratio": "4:3"}, "original")
    assert (old.finishing, old.variants, old.variant_field) == ({}, {}, None)
    assert (free.steps, free.pipeline_steps, free.is_configured) == ([], [], False)
