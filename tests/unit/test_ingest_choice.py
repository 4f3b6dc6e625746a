"""What a booth's photo runs, without I/O (boothbridge.ingest.choice, .admission, .outcome, .model): the variant a
request chooses (query parameter, survey field, unknown, the password never), the job's pipeline snapshot (one
step from a slot's columns, the variant's overrides, placeholders from the booth's fields, never the password),
when a re-post attaches, which steps must be able to run, where a failed job stopped, the answer's deadline with a
wait of 120 s, and the bounds of T_SYNC_RESPONSE."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from boothbridge.catalog import Catalog
from boothbridge.errors import AppError
from boothbridge.ingest.admission import answer_due, fallback_at, seconds_left, slot_for_run, slot_limits
from boothbridge.ingest.choice import (
    NO_CHOICE,
    VariantChoice,
    attaches,
    choose,
    first_call,
    pipeline_for,
    stored_pipeline,
)
from boothbridge.ingest.model import IngestOutcome, SlotForIngest, UploadedForm, log_fields
from boothbridge.ingest.outcome import failure_point
from boothbridge.jobs.model import JobRecord
from boothbridge.jobs.status import JobStatus
from boothbridge.settings import MAX_T_SYNC_SEC, Settings
from boothbridge.slots.rules import SlotUpdate
from functions.admin.schemas_settings import SettingsUpdate
from tests.support.records import job_record

CATALOG = Catalog.load(Path(__file__).resolve().parents[2] / "configs" / "providers.json")
ALL = frozenset(CATALOG.providers)
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PASSWORD = "s3cret-ingest"
VARIANTS = {"winter": {"0": {"prompt": "a snowy {survey1_name} scene"}}, "summer": {"0": {"prompt": "a beach"}}}
STEPS = [
    {
        "provider_id": "gemini",
        "operation_id": "change_image",
        "settings_json": {"prompt": "a portrait of {survey1_name}"},
        "alternatives": [],
        "optional": False,
    },
    {
        "provider_id": "local",
        "operation_id": "resize",
        "settings_json": {"width": 64},
        "alternatives": [],
        "optional": False,
    },
]
SLOT = SlotForIngest(
    id="slot-001",
    provider_id="gemini",
    operation_id="change_image",
    settings_json=STEPS[0]["settings_json"],  # type: ignore[arg-type]
    failure_policy="original",
    password_digest="d",
    steps=STEPS,
    variants=VARIANTS,
    variant_field="survey2_style",
)
FIELDS = {"survey1_name": "Ada", "survey2_style": "summer", "password": PASSWORD}


# ---- the variant -------------------------------------------------------------------------------------------


def test_the_query_parameter_wins_over_the_survey_field() -> None:
    assert choose(VARIANTS, "survey2_style", "winter", FIELDS) == VariantChoice("winter", "query")


def test_the_survey_field_chooses_without_a_query_parameter_and_case_is_forgiven() -> None:
    assert choose(VARIANTS, "survey2_style", None, FIELDS) == VariantChoice("summer", "field")
    assert choose(VARIANTS, "survey2_style", None, {"survey2_style": " Winter "}) == VariantChoice("winter", "field")


def test_an_unfilled_url_token_does_not_hide_the_survey_field() -> None:
    assert choose(VARIANTS, "survey2_style", "%survey2%", FIELDS) == VariantChoice("summer", "field")


def test_an_unknown_variant_is_the_default_and_what_was_asked_is_recorded() -> None:
    choice = choose(VARIANTS, "survey2_style", "autumn\x00", {"survey2_style": "spring"})
    assert choice == VariantChoice(None, "default", "autumn")
    assert choice.record() == {"name": None, "source": "default", "asked": "autumn"}
    assert choose(VARIANTS, None, None, FIELDS) is NO_CHOICE
    assert choose(VARIANTS, "survey2_style", "", {"survey2_style": ""}) is NO_CHOICE
    assert choose({}, "survey2_style", "winter", FIELDS).name is None  # a slot without variants


def test_the_password_field_never_names_a_variant() -> None:
    variants = {PASSWORD: {"0": {"prompt": "x"}}}
    assert choose(variants, "password", None, FIELDS) is NO_CHOICE
    assert choose(variants, "Password", None, {"Password": PASSWORD}) is NO_CHOICE


# ---- the pipeline snapshot ---------------------------------------------------------------------------------


def test_the_snapshot_applies_the_variant_and_fills_placeholders_but_never_with_the_password() -> None:
    fields = {**FIELDS, "survey1_name": "Ada {password}"}
    pipeline = pipeline_for(SLOT, VariantChoice("winter", "query"), fields, max_attempts=3, catalog=CATALOG)
    assert [s["provider_id"] for s in pipeline["steps"]] == ["gemini", "local"]
    assert pipeline["steps"][0]["settings_json"]["prompt"] == "a snowy Ada {password} scene"
    assert pipeline["steps"][1]["settings_json"] == {"width": 64}
    assert pipeline["max_attempts"] == 3 and pipeline["finishing"] == {}
    assert PASSWORD not in repr(pipeline)
    leaky = replace(SLOT, steps=[{**STEPS[0], "settings_json": {"prompt": "pw={password}"}}], variants={})
    default = pipeline_for(leaky, NO_CHOICE, FIELDS, max_attempts=3, catalog=CATALOG)
    assert default["steps"][0]["settings_json"]["prompt"] == "pw="
    assert first_call(default) == ("gemini", "change_image", {"prompt": "pw="})


def test_a_slot_with_no_steps_but_a_provider_runs_one_step_from_its_columns() -> None:
    slot = SlotForIngest("s", "local", "reframe", {"aspect_ratio": "1:1"}, "error", None)
    pipeline = pipeline_for(slot, NO_CHOICE, {}, max_attempts=2, catalog=CATALOG)
    assert pipeline == {
        "steps": [
            {
                "provider_id": "local",
                "operation_id": "reframe",
                "settings_json": {"aspect_ratio": "1:1"},
                "alternatives": [],
                "optional": False,
            }
        ],
        "finishing": {},
        "max_attempts": 2,
    }


# ---- re-posts ------------------------------------------------------------------------------------------------


def _job(status: str, pipeline: dict[str, Any], **changes: Any) -> JobRecord:
    return job_record(NOW, status=JobStatus(status), settings_json={"prompt": "a beach"}, pipeline=pipeline, **changes)


def test_a_re_post_attaches_to_a_job_in_flight_whatever_it_chose() -> None:
    summer = pipeline_for(SLOT, VariantChoice("summer", "field"), FIELDS, max_attempts=3, catalog=CATALOG)
    winter = pipeline_for(SLOT, VariantChoice("winter", "query"), FIELDS, max_attempts=3, catalog=CATALOG)
    for status in ("queued", "running", "waiting_provider"):
        assert attaches(_job(status, summer), winter)


def test_a_re_post_attaches_to_an_ended_job_only_when_it_did_the_same_work() -> None:
    summer = pipeline_for(SLOT, VariantChoice("summer", "field"), FIELDS, max_attempts=3, catalog=CATALOG)
    winter = pipeline_for(SLOT, VariantChoice("winter", "query"), FIELDS, max_attempts=3, catalog=CATALOG)
    assert attaches(_job("succeeded", summer), summer)
    assert attaches(_job("succeeded", summer), {**summer, "max_attempts": 5})  # how hard it tries is not the work
    assert not attaches(_job("succeeded", summer), winter)
    bo = {"survey1_name": "Bo"}
    other_guest = pipeline_for(SLOT, VariantChoice("winter", "query"), bo, max_attempts=3, catalog=CATALOG)
    assert not attaches(_job("succeeded", winter), other_guest)


def test_a_job_from_before_pipelines_is_the_one_step_its_columns_name() -> None:
    slot = SlotForIngest("s", "gemini", "change_image", {"prompt": "a beach"}, "error", None)
    same = pipeline_for(slot, NO_CHOICE, {}, max_attempts=3, catalog=CATALOG)
    assert attaches(_job("succeeded", {}), same)
    snow = replace(slot, settings_json={"prompt": "snow"})
    changed = pipeline_for(snow, NO_CHOICE, {}, max_attempts=3, catalog=CATALOG)
    assert not attaches(_job("succeeded", {}), changed)


def test_one_plain_step_is_stored_as_its_columns_and_a_re_post_still_finds_its_work() -> None:
    slot = SlotForIngest("s", "gemini", "change_image", {"prompt": "a beach"}, "error", None)
    plain = pipeline_for(slot, NO_CHOICE, {}, max_attempts=3, catalog=CATALOG)
    assert stored_pipeline(plain) == {}
    # stored as {} (its call in the job's columns), the ended job is the same work as the same post's snapshot
    provider, operation, settings = first_call(plain)
    ended = replace(_job("succeeded", {}), provider_id=provider, operation_id=operation, settings_json=settings)
    assert attaches(ended, plain)
    step = plain["steps"][0]
    for kept in (
        {**plain, "finishing": {"width": 100}},
        {**plain, "steps": [{**step, "optional": True}]},
        {**plain, "steps": [{**step, "alternatives": [{**step, "alternatives": None}]}]},
        {**plain, "steps": [step, step]},
    ):
        assert stored_pipeline(kept) == kept


# ---- which slots can run, test runs ----------------------------------------------------------------------------


def test_every_step_must_be_able_to_run_unless_optional_or_an_alternative_can() -> None:
    entry = CATALOG.provider("gemini")
    assert entry is not None and slot_limits(CATALOG, ALL, SLOT) is entry.ingest
    assert slot_limits(CATALOG, ALL - {"local"}, SLOT) is None  # step 2's only call cannot run here
    optional = replace(SLOT, steps=[STEPS[0], {**STEPS[1], "optional": True}])
    assert slot_limits(CATALOG, ALL - {"local"}, optional) is entry.ingest
    alt = {"provider_id": "gemini", "operation_id": "change_image", "settings_json": {"prompt": "x"}}
    with_alternative = replace(SLOT, steps=[STEPS[0], {**STEPS[1], "alternatives": [alt]}])
    assert slot_limits(CATALOG, ALL - {"local"}, with_alternative) is entry.ingest
    assert slot_limits(CATALOG, ALL - {"gemini"}, SLOT) is None  # the first step's own call decides the limits


def test_a_test_run_runs_the_unsaved_pipeline() -> None:
    config = SlotUpdate(
        "n",
        "local",
        "resize",
        {"width": 64},
        steps=[STEPS[1], STEPS[0]],
        variants={"v": {}},
        variant_field="f",
        finishing={"width": 10},
    )
    run = slot_for_run(SLOT, is_test=True, config=config)
    assert [s["operation_id"] for s in run.steps] == ["resize", "change_image"]
    assert (run.provider_id, run.operation_id) == ("local", "resize")
    assert (run.variants, run.variant_field, run.finishing) == ({"v": {}}, "f", {"width": 10})
    assert run.failure_policy == "error"
    seed_shape = slot_for_run(SLOT, is_test=True, config=SlotUpdate("n", "local", "reframe", {"aspect_ratio": "1:1"}))
    assert [(s["provider_id"], s["operation_id"]) for s in seed_shape.steps] == [("local", "reframe")]


# ---- where a failure stopped, what is logged ---------------------------------------------------------------


def test_a_failed_or_cancelled_job_names_its_step_and_alternative_others_nothing() -> None:
    assert failure_point(_job("failed", {}, step_index=1, alternative=2)) == (1, 2)
    assert failure_point(_job("cancelled", {}, step_index=0, alternative=0)) == (0, 0)
    for status in ("succeeded", "running", "queued", "waiting_provider"):
        assert failure_point(_job(status, {}, step_index=1, alternative=1)) == (None, None)


def test_the_variant_is_logged_only_for_a_verified_booth() -> None:
    form = UploadedForm(b"x", "a.jpg", "image/jpeg", {"password": PASSWORD, "survey2_style": "summer"})
    chosen = VariantChoice("summer", "field").record()
    ok = IngestOutcome(status=200, log_status="SUCCESS", variant=chosen)
    assert log_fields(form, ok)["_variant"] == {"name": "summer", "source": "field"}
    wrong = AppError(401, "invalid_password", "wrong")
    refused = IngestOutcome(status=401, log_status="ERROR", error=wrong, variant=chosen)
    assert log_fields(form, refused) == {
        "_refused": {"field_count": 2, "field_chars": 40, "password_sent": True, "file_bytes": 1}
    }


# ---- the wait: up to 120 s ---------------------------------------------------------------------------------


def test_the_answer_is_due_t_sync_after_the_start_and_the_booth_fallback_with_it() -> None:
    started = 1000.0
    assert answer_due(started, 120.0) == 1120.0
    assert seconds_left(started, 120.0, now=1003.5) == 116.5
    assert seconds_left(started, 120.0, now=1121.0) == -1.0
    assert fallback_at("original", NOW, seconds_left(started, 120.0, now=1003.5)) == NOW + timedelta(seconds=116.5)
    assert fallback_at("original", NOW, seconds_left(started, 120.0, now=1130.0)) == NOW  # never before now
    assert fallback_at("error", NOW, 116.5) is None
    # The job outlives the longest wait: a 504 leaves it running, and a re-post collects its result.
    assert Settings.model_fields["job_deadline_sec"].default > MAX_T_SYNC_SEC


def test_t_sync_response_may_be_120_s_not_more_and_the_settings_page_agrees() -> None:
    assert MAX_T_SYNC_SEC == 120.0
    assert Settings(_env_file=None, t_sync_response=120).t_sync_response == 120.0
    assert Settings(_env_file=None).t_sync_response == 48.0
    with pytest.raises(ValidationError):
        Settings(_env_file=None, t_sync_response=120.5)
    assert SettingsUpdate(t_sync_response=120).t_sync_response == 120
    with pytest.raises(ValidationError):
        SettingsUpdate(t_sync_response=121)
    bounds = {type(m).__name__: m for m in SettingsUpdate.model_fields["t_sync_response"].metadata}
    assert bounds["Le"].le == MAX_T_SYNC_SEC
