"""Ingest runs the slot's pipeline (issue 14 items 1, 5, 6, 7): real PostgreSQL, S3 on moto, the Gemini fake on
loopback speaking its REST wire format, slots configured through the operator API.

A two-step slot answers with the final image; the variant chosen by the query parameter, by the slot's survey
field, or unknown (the defaults) decides the prompt the Gemini fake receives; placeholders take the booth's fields
and never the password; the choice is recorded with the job and the log row; a re-post attaches to its ended job
only for the same choice; a failed request's log row says which step and alternative stopped it (a success and
a 504 say nothing); T_SYNC_RESPONSE may be 120 s, not 121."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.settings import Settings
from local.fakes.gemini_server import FakeGemini, gemini_server
from tests.support.booth import credentials, jpeg, operator_token, post_photo

GEMINI = "boothbridge.providers.gemini.adapter:GeminiProvider"
SLEEPY = "tests.fakes.sleepy:SleepyProvider"
SURVEY_FIELD = "survey2_style"


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with gemini_server() as server:
        yield server


@pytest.fixture
def settings_overrides(fake: FakeGemini) -> dict[str, Any]:
    # The catalog is the product's plus the test provider `sleepy` (conftest); both Gemini and sleepy are built.
    return {"gemini_api_key": "key-a", "gemini_base_url": fake.url, "provider_plugins": [SLEEPY, GEMINI]}


def _step(provider_id: str, operation_id: str, settings_json: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"provider_id": provider_id, "operation_id": operation_id, "settings_json": settings_json, **more}


async def _configure(client: httpx.AsyncClient, settings: Settings, **body: Any) -> str:
    """PUT slot-001 with `body` (pipeline shape) and return the ingest password."""
    token = await operator_token(client, settings.credentials_path)
    r = await client.put(
        "/api/slots/slot-001",
        json={"name": "pipeline slot", **body},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    return str(credentials(settings.credentials_path)["ingest_password"])


async def _gemini_slot(client: httpx.AsyncClient, settings: Settings, prompt: str) -> str:
    """One Gemini change_image step with `prompt`; variants `winter` and `summer` override it; the survey field
    `survey2_style` names one."""
    return await _configure(
        client,
        settings,
        steps=[_step("gemini", "change_image", {"prompt": prompt})],
        variants={
            "winter": {"0": {"prompt": "Winter for {survey1_name}."}},
            "summer": {"0": {"prompt": "Summer beach."}},
        },
        variant_field=SURVEY_FIELD,
    )


def _prompts(fake: FakeGemini) -> list[str]:
    """The prompt text of each generateContent call the fake received, in order."""
    return [next(p.text or "" for p in call.parts if p.kind == "text") for call in fake.generate_calls()]


async def _one(container: Container, query: str, **params: Any) -> Any:
    async with container.engine.connect() as conn:
        return (await conn.execute(text(query), params)).one()


# ---- a chain of steps ------------------------------------------------------------------------------------------


async def test_a_two_step_slot_answers_with_the_final_image(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    pw = await _configure(
        client,
        settings,
        steps=[
            _step("local", "reframe", {"aspect_ratio": "1:1"}),
            _step("local", "resize", {"width": 96, "height": 96}),
        ],
    )
    r = await post_photo(client, "slot-001", jpeg(1200, 800), pw)

    assert r.status_code == 200, r.text
    assert "x-fallback" not in r.headers
    assert Image.open(io.BytesIO(r.content)).size == (96, 96)  # reframed to a square, then resized
    job = await _one(
        container,
        "SELECT status, provider_id, operation_id, pipeline, request_meta FROM jobs WHERE id = :id",
        id=r.headers["x-job-id"],
    )
    assert job.status == "succeeded"
    assert [(s["provider_id"], s["operation_id"]) for s in job.pipeline["steps"]] == [
        ("local", "reframe"),
        ("local", "resize"),
    ]
    assert (job.pipeline["max_attempts"], job.pipeline["finishing"]) == (settings.max_attempts, {})
    assert "_variant" not in job.request_meta  # a slot without variants records no choice
    log_row = await _one(container, "SELECT status, failed_step, failed_alternative FROM processing_log")
    assert tuple(log_row) == ("SUCCESS", None, None)


# ---- the guest's choice ----------------------------------------------------------------------------------------


async def test_the_variant_query_parameter_changes_the_prompt_the_provider_receives(
    client: httpx.AsyncClient, settings: Settings, container: Container, fake: FakeGemini
) -> None:
    pw = await _gemini_slot(client, settings, "Default party hats.")
    extra = {"survey1_name": "Ada", SURVEY_FIELD: "summer"}  # the query parameter wins over the survey field

    r = await post_photo(client, "slot-001?variant=winter", jpeg(), pw, extra=extra)

    assert r.status_code == 200, r.text
    assert _prompts(fake) == ["Winter for Ada."]
    job = await _one(container, "SELECT request_meta FROM jobs WHERE id = :id", id=r.headers["x-job-id"])
    assert job.request_meta["_variant"] == {"name": "winter", "source": "query"}
    log_row = await _one(container, "SELECT request_fields FROM processing_log")
    assert log_row.request_fields["_variant"] == {"name": "winter", "source": "query"}
    assert log_row.request_fields[SURVEY_FIELD] == "summer"


async def test_the_survey_field_chooses_the_variant(
    client: httpx.AsyncClient, settings: Settings, container: Container, fake: FakeGemini
) -> None:
    pw = await _gemini_slot(client, settings, "Default party hats.")

    r = await post_photo(client, "slot-001", jpeg(), pw, extra={SURVEY_FIELD: "Summer"})

    assert r.status_code == 200, r.text
    assert _prompts(fake) == ["Summer beach."]
    log_row = await _one(container, "SELECT request_fields FROM processing_log")
    assert log_row.request_fields["_variant"] == {"name": "summer", "source": "field"}


async def test_an_unknown_variant_runs_the_default(
    client: httpx.AsyncClient, settings: Settings, container: Container, fake: FakeGemini
) -> None:
    pw = await _gemini_slot(client, settings, "Default party hats.")

    r = await post_photo(client, "slot-001?variant=autumn", jpeg(), pw, extra={SURVEY_FIELD: "spring"})

    assert r.status_code == 200, r.text
    assert _prompts(fake) == ["Default party hats."]
    log_row = await _one(container, "SELECT status, request_fields FROM processing_log")
    assert log_row.status == "SUCCESS"
    assert log_row.request_fields["_variant"] == {"name": None, "source": "default", "asked": "autumn"}


async def test_placeholders_take_the_booth_s_fields_but_never_the_password(
    client: httpx.AsyncClient, settings: Settings, container: Container, fake: FakeGemini
) -> None:
    pw = await _configure(
        client,
        settings,
        steps=[_step("gemini", "change_image", {"prompt": "A crown for {survey1_name}; key {password}{nothing}."})],
    )

    r = await post_photo(client, "slot-001", jpeg(), pw, extra={"survey1_name": "Ada Lovelace"})

    assert r.status_code == 200, r.text
    assert _prompts(fake) == ["A crown for Ada Lovelace; key ."]
    job = await _one(container, "SELECT pipeline::text AS snapshot FROM jobs WHERE id = :id", id=r.headers["x-job-id"])
    assert pw not in job.snapshot and pw not in fake.generate_calls()[0].body.decode()


async def test_a_re_post_attaches_for_the_same_choice_and_is_a_new_job_for_another(
    client: httpx.AsyncClient, settings: Settings, container: Container, fake: FakeGemini
) -> None:
    pw = await _gemini_slot(client, settings, "Default party hats.")
    photo = jpeg(500, 400)

    first = await post_photo(client, "slot-001?variant=winter", photo, pw)
    again = await post_photo(client, "slot-001?variant=winter", photo, pw)  # the booth retrying
    other = await post_photo(client, "slot-001?variant=summer", photo, pw)  # the same photo, another choice

    assert (first.status_code, again.status_code, other.status_code) == (200, 200, 200)
    assert again.headers["x-job-id"] == first.headers["x-job-id"]
    assert other.headers["x-job-id"] != first.headers["x-job-id"]
    assert _prompts(fake) == ["Winter for .", "Summer beach."]  # one paid call per choice


# ---- where a failure stopped ---------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["error", "original"])
async def test_a_failed_request_logs_the_step_and_alternative_that_stopped_it(
    client: httpx.AsyncClient, settings: Settings, container: Container, policy: str
) -> None:
    # Step 1 and its one alternative both fail for good: the chain stops at step 1, alternative 1.
    failing = _step("sleepy", "echo", {"fail_always": True})
    pw = await _configure(
        client,
        settings,
        failure_policy=policy,
        steps=[_step("local", "resize", {"width": 64}), {**failing, "alternatives": [failing]}],
    )
    photo = jpeg(320, 240)

    r = await post_photo(client, "slot-001", photo, pw)

    if policy == "original":
        assert (r.status_code, r.headers["x-fallback"], r.content) == (200, "original", photo)
    else:
        assert r.status_code == 502 and r.json()["error"]["code"] == "provider_failed", r.text
    job = await _one(
        container, "SELECT status, step_index, alternative FROM jobs WHERE id = :id", id=r.headers["x-job-id"]
    )
    assert tuple(job) == ("failed", 1, 1)
    log_row = await _one(container, "SELECT status, failed_step, failed_alternative, fallback FROM processing_log")
    assert tuple(log_row) == ("ERROR", 1, 1, policy == "original")


@pytest.mark.parametrize("settings_overrides", [{"t_sync_response": 1.0, "provider_plugins": [SLEEPY]}])
async def test_a_504_logs_no_step(client: httpx.AsyncClient, settings: Settings, container: Container) -> None:
    pw = await _configure(
        client,
        settings,
        steps=[_step("local", "resize", {"width": 64}), _step("sleepy", "echo", {"delay_sec": 3})],
    )

    r = await post_photo(client, "slot-001", jpeg(), pw)

    assert r.status_code == 504 and r.json()["error"]["code"] == "processing_timeout", r.text
    log_row = await _one(container, "SELECT status, failed_step, failed_alternative FROM processing_log")
    assert tuple(log_row) == ("TIMEOUT", None, None)


# ---- the wait: up to 120 s -----------------------------------------------------------------------------------


async def test_t_sync_response_may_be_set_to_120_s_and_not_121(client: httpx.AsyncClient, settings: Settings) -> None:
    token = await operator_token(client, settings.credentials_path)
    headers = {"Authorization": f"Bearer {token}"}

    r = await client.put("/api/settings", json={"t_sync_response": 120}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["t_sync_response"] == 120

    refused = await client.put("/api/settings", json={"t_sync_response": 121}, headers=headers)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "validation_error"
    assert [f["field"] for f in error["details"]["fields"]] == ["t_sync_response"]
    assert (await client.get("/api/settings", headers=headers)).json()["t_sync_response"] == 120
