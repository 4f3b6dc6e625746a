"""Regression tests for the defects a newcomer's review of issue 14's pipelines found by trying to break it (each
failed before its fix):

- Non-finite numbers (`NaN`, which Starlette's JSON parser accepts) passed the finishing and settings schemas
  (a NaN is neither below a minimum nor above a maximum) and reached jsonb: 500, now 422 at the field (PUT and a
  test run; `slots.rules.unstorable_paths`).
- A lone surrogate (`"\\ud800"`, valid JSON) in `variant_field` or a prompt passed validation and failed the
  UTF-8 encoding of the UPDATE: 500, now 422.
- "Clear media cache" deleted the intermediate images of jobs still in flight (stored as kind `result`): a job
  between steps failed `input_expired`. Now an unfinished job's next input is kept (and outlives the deadline).
- A pipeline job's cost (the sum of its steps') was booked to the provider of its LAST call, so the statistics
  showed one provider's money in another provider's currency. Now each step's cost is its provider's.
- (Older, but reachable by survey fields and prompt placeholders) a form in `charset=utf-7` whose field decodes
  to a lone surrogate: 500 at the job's insert; now the surrogate becomes U+FFFD (`http.form_text.decode_text`).

Real PostgreSQL, S3 on moto, the operator API and ingest through the emulator (tests/conftest.py fixtures)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from tests.fakes.sleepy import SleepyProvider
from tests.support.booth import credentials, jpeg, operator_token, post_photo

WB = '{"provider_id":"local","operation_id":"white_balance","settings_json":{}}'
GEMINI_EDIT = '{"provider_id":"gemini","operation_id":"change_image","settings_json":{"prompt":"PROMPT"}}'


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def step(provider_id: str, operation_id: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"provider_id": provider_id, "operation_id": operation_id, "settings_json": settings}


def uniform_error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    return dict(body["error"])


async def put_raw(client: httpx.AsyncClient, token: str, slot_id: str, raw: str) -> httpx.Response:
    """PUT a body exactly as written (json= cannot send NaN or a lone surrogate escape)."""
    headers = {**auth(token), "Content-Type": "application/json"}
    return await client.put(f"/api/slots/{slot_id}", content=raw.encode(), headers=headers)


async def configure(client: httpx.AsyncClient, token: str, slot_id: str, **body: Any) -> None:
    r = await client.put(f"/api/slots/{slot_id}", json={"name": "review", **body}, headers=auth(token))
    assert r.status_code == 200, r.text


async def stored(container: Container, slot_id: str) -> tuple[Any, ...]:
    async with container.engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT steps, finishing, variants, variant_field, version FROM slots WHERE id = :id"),
                {"id": slot_id},
            )
        ).one()
    return tuple(row)


# ---- bad input that is a 500 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ('{"name":"x","steps":[' + WB + '],"finishing":{"sharpen":NaN}}', "invalid_finishing"),
        ('{"name":"x","steps":[' + WB + '],"variants":{"w":{"0":{"strength":NaN}}}}', "invalid_settings"),
        (
            '{"name":"x","steps":[{"provider_id":"local","operation_id":"white_balance","settings_json":'
            '{"strength":NaN}}]}',
            "invalid_settings",
        ),
        ('{"name":"x","steps":[' + WB + '],"variant_field":"survey\\ud800"}', "invalid_pipeline"),
        ('{"name":"x","steps":[' + GEMINI_EDIT.replace("PROMPT", "oil \\ud800") + "]}", "invalid_settings"),
        (
            '{"name":"x","steps":[' + GEMINI_EDIT.replace("PROMPT", "oil") + '],"variants":{"w":{"0":'
            '{"prompt":"snow \\udfff"}}}}',
            "invalid_settings",
        ),
    ],
    ids=[
        "finishing-sharpen-nan",
        "variant-override-nan",
        "step-setting-nan",
        "variant-field-surrogate",
        "prompt-surrogate",
        "variant-prompt-surrogate",
    ],
)
async def test_a_pipeline_that_jsonb_cannot_hold_is_422_and_nothing_is_saved(
    client: httpx.AsyncClient, settings: Settings, container: Container, raw: str, code: str
) -> None:
    token = await operator_token(client, settings.credentials_path)
    before = await stored(container, "slot-006")
    r = await put_raw(client, token, "slot-006", raw)
    assert uniform_error(r, 422)["code"] == code  # observed: 500 internal_error (DataError / UnicodeEncodeError)
    assert await stored(container, "slot-006") == before


async def test_a_test_run_of_an_unsaved_config_holding_nan_is_422_before_any_job(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    await configure(client, token, "slot-006", steps=[step("local", "white_balance", {})])
    config = '{"steps":[' + WB + '],"finishing":{"sharpen":NaN}}'
    r = await client.post(
        "/api/slots/slot-006/test",
        files={"file": ("a.jpg", jpeg(64, 48), "image/jpeg")},
        data={"config": config},
        headers=auth(token),
    )
    assert uniform_error(r, 422)["code"] == "invalid_finishing"  # observed: 500 at the job's INSERT (jsonb)
    async with container.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM jobs"))).scalar() == 0


async def test_a_booth_field_decoding_to_a_lone_surrogate_is_not_a_500(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """Pre-existing (request_meta), now also the path of survey fields into variants and prompt placeholders."""
    token = await operator_token(client, settings.credentials_path)
    await configure(client, token, "slot-006", steps=[step("local", "white_balance", {})], variant_field="survey1")
    password = str(credentials(settings.credentials_path)["ingest_password"])
    boundary = "b0undary"
    parts = [(b"password", password.encode()), (b"survey1", b"+2AA-")]  # UTF-7 for the lone surrogate U+D800
    body = b"".join(
        b"--"
        + boundary.encode()
        + b'\r\nContent-Disposition: form-data; name="'
        + name
        + b'"\r\n\r\n'
        + value
        + b"\r\n"
        for name, value in parts
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="fileToUpload"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
        + jpeg(64, 48)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    ctype = f"multipart/form-data; boundary={boundary}; charset=utf-7"
    r = await client.post("/ingest/slot-006", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 200, r.text  # observed: 500 internal_error (the job's request_meta into jsonb)


# ---- semantics -------------------------------------------------------------------------------------------------


async def _wait_for(predicate: Any, what: str) -> Any:
    for _ in range(500):
        found = await predicate()
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"never: {what}")


async def test_clearing_the_media_cache_keeps_the_images_of_jobs_between_steps(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    password = str(credentials(settings.credentials_path)["ingest_password"])
    # `sleepy` runs 4 calls at once: four occupiers hold them, so slot-001's job waits, queued, at step 2.
    for n in range(2, 6):
        await configure(client, token, f"slot-00{n}", steps=[step("sleepy", "echo", {"delay_sec": 2.5})])
    await configure(
        client,
        token,
        "slot-001",
        failure_policy="error",
        steps=[step("local", "reframe", {"aspect_ratio": "1:1"}), step("sleepy", "echo", {})],
    )
    occupiers = [
        asyncio.create_task(post_photo(client, f"slot-00{n}", jpeg(320, 240, color=(n, 2, 3)), password))
        for n in range(2, 6)
    ]

    async def all_busy() -> bool:
        return len(SleepyProvider.calls) >= 4

    await _wait_for(all_busy, "sleepy's four places taken")
    booth = asyncio.create_task(post_photo(client, "slot-001", jpeg(640, 480), password))

    async def at_step_two() -> Any:
        listed = (await client.get("/api/jobs?slot_id=slot-001", headers=auth(token))).json()["data"]
        return listed[0] if listed and listed[0]["step_index"] == 1 else None

    job = await _wait_for(at_step_two, "slot-001's job queued at step 2")
    assert (job["status"], job["phase"]) == ("queued", "queued")

    r = await client.post("/api/settings/clear_media_cache", headers=auth(token))
    assert r.status_code == 200, r.text
    answer = await asyncio.wait_for(booth, 30)
    for occupier in occupiers:
        assert (await occupier).status_code == 200
    # Observed: 502 provider_failed, reason input_expired ("the previous step's image is no longer stored"):
    # the cache clear deleted step 1's output (kind 'result'), the input of the job's step 2.
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/jpeg"


async def test_a_pipeline_job_s_cost_is_booked_to_the_provider_whose_step_cost_it(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = await operator_token(client, settings.credentials_path)
    password = str(credentials(settings.credentials_path)["ingest_password"])
    # Step 1: `sleepy` (cost 0.01, no pricing currency in the catalog: "unknown"); step 2: local (USD, cost 0).
    await configure(client, token, "slot-001", steps=[step("sleepy", "echo", {}), step("local", "white_balance", {})])
    r = await post_photo(client, "slot-001", jpeg(320, 240), password)
    assert r.status_code == 200, r.text
    job = (await client.get(f"/api/jobs/{r.headers['x-job-id']}", headers=auth(token))).json()
    assert [(s["provider_id"], s["cost"]) for s in job["steps"]] == [("sleepy", 0.01), ("local", 0.0)]
    summary = (await client.get("/api/stats/summary", headers=auth(token))).json()
    [slot] = [s for s in summary["data"] if s["id"] == "slot-001"]
    # Each step's money in its provider's currency (local's free call is 0 USD), not all of it under the last call's.
    assert slot["total_cost_by_currency"] == {"unknown": 0.01, "USD": 0.0}
    assert (slot["last_cost"], slot["last_cost_currency"]) == (0.01, "unknown")  # whose price the job mostly was
