"""A slot as a pipeline (issue 14), without I/O, against the real `configs/providers.json`: the body in both
shapes (boothbridge.slots.pipeline.parse_update), the limits, validation of every step, alternative, finishing
and variant at its field path (slots.rules), the images a pipeline names, and the job pipeline snapshot with the
guest's variant and booth-field placeholders (job_pipeline, slots.guest)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from boothbridge.catalog import Catalog
from boothbridge.errors import AppError
from boothbridge.slots.guest import MAX_FIELD_CHARS, choose_variant, fill_placeholders
from boothbridge.slots.pipeline import SlotUpdate, job_pipeline, parse_update, slot_steps
from boothbridge.slots.rules import media_references, validate_update

CATALOG = Catalog.load(Path(__file__).resolve().parents[2] / "configs" / "providers.json")
TEMPLATE = "3f2b8c1e-4d5a-4e6f-8a9b-0c1d2e3f4a5b"
OVERLAY = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
REFERENCE = "0b6f8a52-9c3e-4d1f-8e2a-5c7b9d1e3f40"


def call(provider_id: str, operation_id: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"provider_id": provider_id, "operation_id": operation_id, "settings_json": settings}


def step(provider_id: str, operation_id: str, settings: dict[str, Any], *alternatives: Any, **extra: Any) -> Any:
    return {**call(provider_id, operation_id, settings), "alternatives": list(alternatives), **extra}


# A three-step chain: reframe, a Gemini edit with a Turbotext alternative, an optional upscale.
THREE = [
    step("local", "reframe", {"aspect_ratio": "3:2"}),
    step(
        "gemini",
        "change_image",
        {"prompt": "winter scene for {name}", "model": "gemini-2.5-flash-image"},
        call("turbotext", "change_image", {"prompt": "winter scene", "strength": 40}),
        call("local", "white_balance", {"strength": 0.5}),
    ),
    step("local", "resize", {"width": 2048}, optional=True),
]


def body(**fields: Any) -> dict[str, Any]:
    """A PUT body as the pydantic model dumps it (absent fields None)."""
    keys = ("name", "provider_id", "operation_id", "settings_json", "steps", "finishing", "variants", "variant_field")
    out: dict[str, Any] = dict.fromkeys(keys) | {"failure_policy": None, "version": None}
    out["name"] = "Slot"
    return out | fields


def pipeline_update(steps: list[Any] | None = None, **extra: Any) -> SlotUpdate:
    return parse_update(body(steps=copy.deepcopy(steps if steps is not None else THREE), **extra))


def refusal(run: Callable[[], object]) -> AppError:
    with pytest.raises(AppError) as info:
        run()
    return info.value


def fields_of(err: AppError) -> list[str]:
    return [f["field"] for f in err.details["fields"]]


# ---- the body, in both shapes ------------------------------------------------------------------------------


def test_the_seed_003_shape_is_one_step_reported_at_bare_names() -> None:
    update = parse_update(body(provider_id="local", operation_id="resize", settings_json={"width": 512}))
    assert update.steps == []
    assert (update.provider_id, update.operation_id, update.settings_json) == ("local", "resize", {"width": 512})
    assert update.pipeline_steps == [step("local", "resize", {"width": 512}, optional=False)]
    absent = parse_update(body(provider_id="local", operation_id="white_balance"))
    assert absent.settings_json == {}


def test_steps_win_and_the_top_level_fields_are_step_1_s() -> None:
    update = pipeline_update()
    assert (update.provider_id, update.operation_id, update.settings_json) == (
        "local",
        "reframe",
        {"aspect_ratio": "3:2"},
    )
    assert [s["optional"] for s in update.pipeline_steps] == [False, False, True]
    assert update.pipeline_steps[1]["alternatives"][0] == THREE[1]["alternatives"][0]
    # Equal top-level fields (a GET's answer sent back unchanged) are accepted.
    same = pipeline_update(provider_id="local", operation_id="reframe", settings_json={"aspect_ratio": "3:2"})
    assert same.pipeline_steps == update.pipeline_steps


def test_top_level_fields_that_contradict_the_steps_are_422_naming_each() -> None:
    err = refusal(lambda: pipeline_update(provider_id="gemini", settings_json={"aspect_ratio": "1:1"}))
    assert (err.status, err.code) == (422, "invalid_pipeline")
    assert fields_of(err) == ["provider_id", "settings_json"]


def test_neither_steps_nor_both_ids_is_400_at_the_missing_ids() -> None:
    err = refusal(lambda: parse_update(body()))
    assert (err.status, err.code, fields_of(err)) == (400, "validation_error", ["provider_id", "operation_id"])
    err = refusal(lambda: parse_update(body(provider_id="local")))
    assert fields_of(err) == ["operation_id"]


def test_an_empty_step_list_is_422_and_an_empty_variant_field_is_none() -> None:
    err = refusal(lambda: pipeline_update([]))
    assert (err.code, fields_of(err)) == ("invalid_pipeline", ["steps"])
    assert pipeline_update(variant_field="").variant_field is None


def test_a_stored_row_without_steps_reads_as_its_one_step_or_as_unconfigured() -> None:
    assert slot_steps([], "local", "resize", {"width": 1}) == [step("local", "resize", {"width": 1}, optional=False)]
    assert slot_steps([], None, None, {}) == []
    assert slot_steps([call("local", "resize", {"width": 1})], None, None, {})[0]["alternatives"] == []


# ---- limits ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"steps": [step("local", "white_balance", {})] * 9}, "steps"),
        (
            {"steps": [step("local", "white_balance", {}, *[call("local", "white_balance", {})] * 4)]},
            "steps/0/alternatives",
        ),
        ({"variants": {f"v{n}": {} for n in range(21)}}, "variants"),
        ({"variants": {"has space": {}}}, "variants/has space"),
        ({"variants": {"x" * 41: {}}}, "variants/" + "x" * 41),
        ({"variants": {"w": {"3": {"prompt": "p"}}}}, "variants/w/3"),  # THREE has steps 0-2
        ({"variants": {"w": {"01": {"prompt": "p"}}}}, "variants/w/01"),
        ({"variants": {"w": {"-1": {"prompt": "p"}}}}, "variants/w/-1"),
        ({"variants": {"w": {"1": "make it snow"}}}, "variants/w/1"),
        ({"variants": {"w": ["1"]}}, "variants/w"),
        ({"variant_field": "f" * 101}, "variant_field"),
        ({"variant_field": "survey\n1"}, "variant_field"),
    ],
)
def test_beyond_the_limits_is_422_invalid_pipeline_at_the_field(change: dict[str, Any], field: str) -> None:
    update = pipeline_update(change.pop("steps", None), **change)
    err = refusal(lambda: validate_update(CATALOG, update))
    assert (err.status, err.code, fields_of(err)) == (422, "invalid_pipeline", [field])


def test_at_the_limits_is_accepted() -> None:
    alternatives = [call("local", "white_balance", {})] * 3
    steps = [step("local", "white_balance", {"strength": 0.1}, *alternatives)] * 8
    variants = {f"v-{n}_{'x' * 30}": {"7": {"strength": 0.9}} for n in range(20)}
    validate_update(CATALOG, pipeline_update(steps, variants=variants, variant_field="s" * 100))


# ---- every step, alternative, finishing and variant ---------------------------------------------------------


def test_a_valid_three_step_pipeline_with_finishing_and_variants_passes() -> None:
    finishing = {"width": 1800, "height": 1200, "fit": "pad", "pad_color": "#000000", "sharpen": 0.3}
    finishing |= {"overlay_media_id": OVERLAY, "format": "jpeg", "quality": 85, "max_bytes": 1_500_000}
    variants = {"winter": {"1": {"prompt": "snow"}}, "summer": {"1": {"prompt": "sun"}, "0": {"aspect_ratio": "1:1"}}}
    validate_update(CATALOG, pipeline_update(finishing=finishing, variants=variants, variant_field="survey1"))


def test_an_unknown_provider_in_an_alternative_is_reported_at_its_path() -> None:
    steps = copy.deepcopy(THREE)
    steps[1]["alternatives"][1]["provider_id"] = "nope"
    err = refusal(lambda: validate_update(CATALOG, pipeline_update(steps)))
    assert (err.code, err.details) == (
        "unknown_provider",
        {"field": "steps/1/alternatives/1/provider_id", "value": "nope"},
    )


def test_an_operation_an_alternative_s_provider_lacks_is_reported_at_its_path() -> None:
    steps = copy.deepcopy(THREE)
    steps[1]["alternatives"][0]["operation_id"] = "combine_images"  # Gemini has it, Turbotext does not
    err = refusal(lambda: validate_update(CATALOG, pipeline_update(steps)))
    assert err.code == "unsupported_operation"
    assert err.details == {
        "field": "steps/1/alternatives/0/operation_id",
        "supported": list(CATALOG.providers["turbotext"].operations),
    }


@pytest.mark.parametrize(
    ("where", "settings", "fields"),
    [
        ((1, None), {"prompt": "p", "strength": 99}, ["steps/1/settings_json/strength"]),
        ((2, None), {"mode": "fit"}, ["steps/2/settings_json"]),  # anyOf width/height: the object itself
        ((1, 0), {"prompt": "x" * 2001}, ["steps/1/alternatives/0/settings_json/prompt"]),
        ((1, 1), {"strength": 1, "output": {"quality": 0}}, ["steps/1/alternatives/1/settings_json/output/quality"]),
        ((1, 0), {"prompt": "a\x00b"}, ["steps/1/alternatives/0/settings_json/prompt"]),  # NUL
    ],
)
def test_settings_of_any_step_or_alternative_are_checked_at_their_path(
    where: tuple[int, int | None], settings: dict[str, Any], fields: list[str]
) -> None:
    steps = copy.deepcopy(THREE)
    index, alternative = where
    target = steps[index] if alternative is None else steps[index]["alternatives"][alternative]
    target["settings_json"] = settings
    err = refusal(lambda: validate_update(CATALOG, pipeline_update(steps)))
    assert (err.status, err.code, fields_of(err)) == (422, "invalid_settings", fields)


@pytest.mark.parametrize(
    ("finishing", "fields"),
    [
        ({"width": 0}, ["finishing/width"]),
        ({"fit": "stretch", "quality": 101}, ["finishing/fit", "finishing/quality"]),
        ({"overlay_media_id": "logo.png"}, ["finishing/overlay_media_id"]),
        ({"border": 3}, ["finishing"]),  # no such field
    ],
)
def test_bad_finishing_is_422_at_its_fields(finishing: dict[str, Any], fields: list[str]) -> None:
    err = refusal(lambda: validate_update(CATALOG, pipeline_update(finishing=finishing)))
    assert (err.status, err.code, fields_of(err)) == (422, "invalid_finishing", fields)


def test_an_override_that_breaks_the_step_s_own_schema_is_422_at_the_variant() -> None:
    bad = pipeline_update(variants={"w": {"1": {"strength": 99}}})
    err = refusal(lambda: validate_update(CATALOG, bad))
    assert (err.code, fields_of(err)) == ("invalid_settings", ["variants/w/1/strength"])
    assert "own" in err.details["fields"][0]["message"]
    # A key the step's own operation does not have: the merged object is refused (additionalProperties).
    unknown = pipeline_update(variants={"w": {"0": {"strength": 0.5}}})  # step 0 is a reframe
    assert fields_of(refusal(lambda: validate_update(CATALOG, unknown))) == ["variants/w/0"]


def test_an_override_is_checked_against_each_alternative_that_has_the_key() -> None:
    # aspect_ratio: Gemini's change_image allows 4:5, the local reframe alternative does not.
    steps = [step("gemini", "change_image", {"prompt": "p"}, call("local", "reframe", {"aspect_ratio": "1:1"}))]
    err = refusal(
        lambda: validate_update(CATALOG, pipeline_update(steps, variants={"w": {"0": {"aspect_ratio": "4:5"}}}))
    )
    assert (err.code, fields_of(err)) == ("invalid_settings", ["variants/w/0/aspect_ratio"])
    assert "alternative 0" in err.details["fields"][0]["message"]
    # A strength override: the reframe alternative has no strength, so it is not given one and nothing breaks.
    validate_update(CATALOG, pipeline_update(steps, variants={"w": {"0": {"strength": 40}}}))


def test_a_nul_in_an_override_is_422_at_its_path() -> None:
    err = refusal(lambda: validate_update(CATALOG, pipeline_update(variants={"w": {"1": {"prompt": "a\x00"}}})))
    assert (err.code, fields_of(err)) == ("invalid_settings", ["variants/w/1/prompt"])


def test_checks_run_structure_steps_finishing_variants_policy_in_that_order() -> None:
    def code(**change: Any) -> str:
        steps = change.pop("steps", None)
        return refusal(lambda: validate_update(CATALOG, pipeline_update(steps, **change))).code

    bad = {"finishing": {"width": 0}, "variants": {"w": {"1": {"strength": 99}}}, "failure_policy": "x"}
    broken_step = [step("nope", "reframe", {})]
    assert code(**bad, variant_field="\n") == "invalid_pipeline"
    assert code(steps=broken_step, finishing={"width": 0}, failure_policy="x") == "unknown_provider"
    assert code(**bad) == "invalid_finishing"
    assert code(variants=bad["variants"], failure_policy="x") == "invalid_settings"
    assert code(failure_policy="x") == "invalid_failure_policy"


# ---- the images a pipeline names ----------------------------------------------------------------------------


def test_media_of_every_step_alternative_variant_and_the_overlay_are_named_at_their_paths() -> None:
    steps = [
        step("local", "frame", {"template_media_id": TEMPLATE}),
        step(
            "gemini",
            "style_transfer",
            {"reference_media_id": REFERENCE},
            call("turbotext", "face_swap", {"target_media_id": TEMPLATE}),
        ),
    ]
    variants = {"w": {"1": {"reference_media_id": OVERLAY}}}
    update = pipeline_update(steps, variants=variants, finishing={"overlay_media_id": OVERLAY})
    validate_update(CATALOG, update)
    assert media_references(CATALOG, update) == {
        "steps/0/settings_json/template_media_id": uuid.UUID(TEMPLATE),
        "steps/1/settings_json/reference_media_id": uuid.UUID(REFERENCE),
        "steps/1/alternatives/0/settings_json/target_media_id": uuid.UUID(TEMPLATE),
        "variants/w/1/reference_media_id": uuid.UUID(OVERLAY),
        "finishing/overlay_media_id": uuid.UUID(OVERLAY),
    }
    assert media_references(CATALOG, pipeline_update(finishing={"overlay_media_id": None})) == {}


# ---- the job pipeline: the guest's variant and booth fields --------------------------------------------------

VARIANTS = {
    "winter": {"1": {"prompt": "snowy {name}", "model": "gemini-3-pro-image"}},
    "Summer": {"1": {"prompt": "sunny"}, "0": {"aspect_ratio": "1:1"}},
}


def snapshot(variant: str | None, fields: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    return job_pipeline(
        THREE, {"width": 1800}, VARIANTS, variant=variant, fields=fields or {}, max_attempts=3, catalog=CATALOG, **extra
    )


def test_without_a_variant_the_snapshot_is_the_slot_s_steps_with_placeholders_filled() -> None:
    out = snapshot(None, {"name": "Ann"})
    assert set(out) == {"steps", "finishing", "max_attempts"}
    assert (out["finishing"], out["max_attempts"]) == ({"width": 1800}, 3)
    expected = copy.deepcopy(THREE)
    expected[0]["optional"] = expected[1]["optional"] = False
    expected[1]["settings_json"]["prompt"] = "winter scene for Ann"
    assert out["steps"] == expected


def test_the_example_variants_are_a_valid_configuration() -> None:
    validate_update(CATALOG, pipeline_update(variants=VARIANTS))


def test_a_variant_reaches_the_step_s_own_call_and_each_alternative_whose_schema_has_the_key() -> None:
    out = snapshot("winter", {"name": "Bo"})
    own, turbotext, balance = out["steps"][1], *out["steps"][1]["alternatives"]
    assert own["settings_json"] == {"prompt": "snowy Bo", "model": "gemini-3-pro-image"}
    assert turbotext["settings_json"] == {"prompt": "snowy Bo", "strength": 40, "model": "gemini-3-pro-image"}
    assert balance["settings_json"] == {"strength": 0.5}  # white balance has neither a prompt nor a model
    assert out["steps"][0]["settings_json"] == {"aspect_ratio": "3:2"}  # other steps untouched


def test_an_override_key_an_alternative_s_schema_has_reaches_it_even_if_its_settings_lack_it() -> None:
    variants = {"v": {"1": {"strength": 0.7}}}
    steps = [step("local", "white_balance", {"strength": 0.1}, call("local", "white_balance", {}))] * 2
    out = job_pipeline(steps, {}, variants, variant="v", fields={}, max_attempts=1, catalog=CATALOG)
    assert [out["steps"][1]["settings_json"], out["steps"][1]["alternatives"][0]["settings_json"]] == [
        {"strength": 0.7},
        {"strength": 0.7},
    ]
    assert out["steps"][0]["settings_json"] == {"strength": 0.1}


@pytest.mark.parametrize("wanted", ["nope", "", None, "  "])
def test_an_unknown_or_absent_variant_runs_the_defaults(wanted: str | None) -> None:
    assert snapshot(wanted) == snapshot(None)


def test_a_variant_is_chosen_exactly_then_ignoring_case_and_surrounding_spaces() -> None:
    assert snapshot(" summer ")["steps"][0]["settings_json"] == {"aspect_ratio": "1:1"}
    assert choose_variant(VARIANTS, "WINTER") == "winter"
    assert choose_variant({"a": {}, "A": {}}, "A") == "A"
    assert choose_variant({"a": {}, "A": {}}, "  a") == "a"
    assert choose_variant({"ab": {}, "AB": {}}, "Ab") is None  # ambiguous: the defaults


def test_hostile_field_values_fill_only_the_prompt_capped_and_never_expanded() -> None:
    hostile = {"name": "{prompt} {model} }{ " + "x" * 10_000, "model": "evil-model"}
    out = snapshot("winter", hostile)
    prompt = out["steps"][1]["settings_json"]["prompt"]
    value = hostile["name"][:MAX_FIELD_CHARS]
    assert prompt == "snowy " + value  # inserted as text, `{prompt}`/`{model}` inside it not expanded
    assert len(prompt) == len("snowy ") + MAX_FIELD_CHARS
    assert out["steps"][1]["settings_json"]["model"] == "gemini-3-pro-image"  # the variant's, not the field's


def test_control_characters_are_removed_and_unknown_placeholders_become_empty() -> None:
    assert fill_placeholders("a {x} b {y}.", {"x": "1"}, 100) == "a 1 b ."
    values = job_pipeline(
        [step("gemini", "change_image", {"prompt": "[{n}]"})],
        {},
        {},
        variant=None,
        fields={"n": "li\x00ne\r\nbreak\x1b[31m\x7f\u0085"},
        max_attempts=1,
    )
    assert values["steps"][0]["settings_json"]["prompt"] == "[linebreak[31m]"


def test_no_format_string_evaluation_reaches_attributes_or_indexes() -> None:
    text = "{prompt.__class__} {name[0]} {0} {__init__} {}"
    assert fill_placeholders(text, {"name": "Ann", "0": "zero", "__init__": "i"}, 500) == (
        "{prompt.__class__} {name[0]} zero i {}"
    )


@pytest.mark.parametrize("name", ["password", "PASSWORD", "Password"])
def test_the_password_is_never_a_placeholder_value(name: str) -> None:
    steps = [step("gemini", "change_image", {"prompt": "p={password} q={" + name + "}"})]
    out = job_pipeline(steps, {}, {}, variant=None, fields={name: "hunter2", "password": "s3cret"}, max_attempts=1)
    assert out["steps"][0]["settings_json"]["prompt"] == "p= q="
    assert "hunter2" not in str(out) and "s3cret" not in str(out)


def test_the_filled_prompt_is_cut_to_its_schema_s_max_length() -> None:
    steps = [step("gemini", "change_image", {"prompt": "{a}" * 12 + "y" * 1990})]
    out = job_pipeline(steps, {}, {}, variant=None, fields={"a": "z" * 200}, max_attempts=1, catalog=CATALOG)
    prompt = out["steps"][0]["settings_json"]["prompt"]
    assert len(prompt) == 2000 and prompt == "z" * 2000  # the catalog's maxLength


def test_only_prompts_take_placeholders() -> None:
    steps = [step("gemini", "change_image", {"prompt": "{a}", "model": "{a}", "aspect_ratio": "{a}"})]
    out = job_pipeline(steps, {}, {}, variant=None, fields={"a": "X"}, max_attempts=1, catalog=CATALOG)
    assert out["steps"][0]["settings_json"] == {"prompt": "X", "model": "{a}", "aspect_ratio": "{a}"}


def test_without_a_catalog_an_alternative_gets_only_keys_it_has_or_all_for_the_same_operation() -> None:
    out = job_pipeline(THREE, {}, VARIANTS, variant="winter", fields={"name": "C"}, max_attempts=2)
    own, turbotext, balance = out["steps"][1], *out["steps"][1]["alternatives"]
    assert own["settings_json"]["prompt"] == turbotext["settings_json"]["prompt"] == "snowy C"
    assert turbotext["settings_json"]["model"] == "gemini-3-pro-image"  # same operation: same schema
    assert balance["settings_json"] == {"strength": 0.5}
    # Another operation gets an override key only when its own settings already have it.
    steps = [step("gemini", "style_transfer", {"prompt": "a"}, call("gemini", "change_image", {"prompt": "b"}))]
    steps[0]["alternatives"].append(call("local", "reframe", {"aspect_ratio": "1:1"}))
    out = job_pipeline(steps, {}, {"v": {"0": {"prompt": "c"}}}, variant="v", fields={}, max_attempts=1)
    assert [c["settings_json"] for c in out["steps"][0]["alternatives"]] == [{"prompt": "c"}, {"aspect_ratio": "1:1"}]


def test_the_slot_s_own_configuration_is_not_changed_and_no_steps_is_an_error() -> None:
    before = copy.deepcopy((THREE, VARIANTS))
    snapshot("winter", {"name": "D"})
    assert (THREE, VARIANTS) == before
    with pytest.raises(ValueError):
        job_pipeline([], {}, {}, variant=None, fields={}, max_attempts=1)
