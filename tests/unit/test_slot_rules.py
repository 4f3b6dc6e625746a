"""Whether a slot update is valid (boothbridge.slots.rules), without I/O, against the real `configs/providers.json`:
provider known, operation offered, settings valid against the operation's JSON Schema, no NUL, failure policy,
the order of the checks, and which stored images a valid update names."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from boothbridge.catalog import Catalog
from boothbridge.errors import AppError
from boothbridge.slots.rules import (
    SlotUpdate,
    check_media_found,
    media_references,
    nul_paths,
    unstorable_paths,
    validate_update,
)

CATALOG = Catalog.load(Path(__file__).resolve().parents[2] / "configs" / "providers.json")
TEMPLATE = "3f2b8c1e-4d5a-4e6f-8a9b-0c1d2e3f4a5b"
OVERLAY = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"

# One valid configuration of every operation each provider offers.
VALID: dict[str, dict[str, Any]] = {
    "reframe": {"aspect_ratio": "16:9", "mode": "pad", "pad_color": "#00ff00", "output": {"format": "png"}},
    "frame": {"template_media_id": TEMPLATE, "x": -20, "y": 40, "scale": 1.5},
    "white_balance": {"strength": 0.5},
    "resize": {"height": 1024, "mode": "fill", "upscale": False},
    "extract_object": {"mask_media_id": TEMPLATE, "border_adjustment": -5, "use_blur": True, "blur_radius": 2.5},
    "smart_mask": {
        "bbox": [10, 20, 300, 400],
        "points": [[100, 200]],
        "background_points": [[5, 5]],
        "border_adjustment": 3,
    },
    "face_crop": {"aspect_ratio": "9:16", "size": 0.6, "pad_color": "#000000"},
    "replace_background": {"template_media_id": TEMPLATE, "x": 10, "y": 20, "scale": 0.5},
    "style_transfer": {"reference_media_id": TEMPLATE, "prompt": "oil painting"},
    "combine_images": {"overlay_media_id": OVERLAY, "prompt": "put them together", "aspect_ratio": "1:1"},
    "change_image": {"prompt": "make it winter", "output": {"format": "jpeg", "quality": 85}},
    "face_swap": {"target_media_id": TEMPLATE, "face_restore": True},
    "overlay": {"background_media_id": TEMPLATE, "x": 10, "y": -5, "scale": 0.5, "aspect_ratio": "landscape_16_9"},
    "remove_background": {},
    "upscale": {"scale": 2, "model": "RealESRGAN_x4plus", "output_format": "png"},
    "edit": {"prompt": "make it night", "guidance_scale": 3.5, "safety_tolerance": "2"},
    "avatar": {"prompt": "as an astronaut", "reference_media_id": TEMPLATE},
    "generate": {"prompt": "a ballroom", "aspect_ratio": "16:9"},
    "generate_finetuned": {"prompt": "TOM4S", "finetune_id": "ft-1", "finetune_strength": 0.5},
    "image_to_video": {"prompt": "waves", "duration": "10"},
    "finetune": {"data_url": "https://example.com/photos.zip"},
}


def _update(provider_id: str, operation_id: str, settings: Any, **extra: Any) -> SlotUpdate:
    return SlotUpdate("Slot", provider_id, operation_id, settings, **extra)


def _refusal(call: Callable[[], object]) -> AppError:
    """The AppError `call` raises (the test fails if it raises nothing)."""
    with pytest.raises(AppError) as info:
        call()
    return info.value


def _fields(err: AppError) -> dict[str, str]:
    return {f["field"]: f["message"] for f in err.details["fields"]}


def test_the_catalog_offers_what_the_readme_lists() -> None:
    offered = {p.id: p.operations for p in CATALOG.providers.values()}
    assert offered == {
        "local": (
            "reframe",
            "frame",
            "overlay",
            "white_balance",
            "resize",
            "extract_object",
            "smart_mask",
            "face_crop",
            "remove_background",
            "replace_background",
        ),
        "gemini": ("style_transfer", "combine_images", "change_image"),
        "turbotext": ("style_transfer", "face_swap", "change_image"),
        "fal": (
            "remove_background",
            "upscale",
            "reframe",
            "edit",
            "avatar",
            "generate",
            "generate_finetuned",
            "image_to_video",
            "finetune",
        ),
    }
    assert set(VALID) == set(CATALOG.operations)


@pytest.mark.parametrize(
    ("provider_id", "operation_id"),
    [(p.id, op) for p in CATALOG.providers.values() for op in p.operations],
)
@pytest.mark.parametrize("policy", [None, "error", "original"])
def test_every_offered_operation_with_valid_settings_is_accepted(
    provider_id: str, operation_id: str, policy: str | None
) -> None:
    validate_update(CATALOG, _update(provider_id, operation_id, VALID[operation_id], failure_policy=policy))


def test_an_unknown_provider_is_422_naming_it() -> None:
    err = _refusal(lambda: validate_update(CATALOG, _update("nope", "reframe", {})))
    assert (err.status, err.code, err.message) == (422, "unknown_provider", "no such provider")
    assert err.details == {"field": "provider_id", "value": "nope"}


@pytest.mark.parametrize(
    ("provider_id", "operation_id"),
    [("local", "style_transfer"), ("gemini", "face_swap"), ("turbotext", "reframe"), ("local", "no_such_op")],
)
def test_an_operation_the_provider_does_not_offer_is_422_listing_what_it_does(
    provider_id: str, operation_id: str
) -> None:
    err = _refusal(lambda: validate_update(CATALOG, _update(provider_id, operation_id, {})))
    assert (err.status, err.code) == (422, "unsupported_operation")
    assert err.message == f"provider {provider_id} has no operation {operation_id}"
    entry = CATALOG.provider(provider_id)
    assert entry is not None
    assert err.details == {"field": "operation_id", "supported": list(entry.operations)}


@pytest.mark.parametrize(
    ("operation_id", "settings", "fields"),
    [
        ("reframe", {}, {""}),  # the required aspect_ratio is missing: reported on the object itself
        ("reframe", {"aspect_ratio": "5:4"}, {"aspect_ratio"}),
        ("reframe", {"aspect_ratio": "1:1", "pad_color": "red"}, {"pad_color"}),
        ("reframe", {"aspect_ratio": "1:1", "zoom": 2}, {""}),  # additionalProperties: false
        ("reframe", {"aspect_ratio": "1:1", "output": {"quality": 0}}, {"output/quality"}),
        ("frame", {"template_media_id": "not-a-uuid"}, {"template_media_id"}),  # the reference's shape
        ("frame", {"template_media_id": TEMPLATE, "scale": 0}, {"scale"}),
        ("resize", {"mode": "fit"}, {""}),  # anyOf: width or height
        ("resize", {"width": 8}, {"width"}),
        ("white_balance", {"strength": 1.5}, {"strength"}),
        ("change_image", {"prompt": "p", "strength": 81}, {"strength"}),
        ("change_image", {"prompt": "x" * 2001}, {"prompt"}),
        ("face_swap", {"target_media_id": 42}, {"target_media_id"}),
        ("reframe", {"aspect_ratio": 1, "mode": "zoom"}, {"aspect_ratio", "mode"}),  # every violation
    ],
)
def test_settings_against_the_operation_s_schema_are_422_at_each_field(
    operation_id: str, settings: dict[str, Any], fields: set[str]
) -> None:
    provider_id = next(p.id for p in CATALOG.providers.values() if operation_id in p.operations)
    err = _refusal(lambda: validate_update(CATALOG, _update(provider_id, operation_id, settings)))
    assert (err.status, err.code) == (422, "invalid_settings")
    assert err.message == "settings_json does not match the operation's settings_schema"
    assert set(_fields(err)) == fields
    assert all(message for message in _fields(err).values())


def test_settings_that_are_not_an_object_are_invalid_settings() -> None:
    err = _refusal(lambda: validate_update(CATALOG, _update("local", "white_balance", ["strength"])))
    assert err.code == "invalid_settings" and set(_fields(err)) == {""}


def test_schema_errors_are_listed_in_path_order() -> None:
    settings = {"aspect_ratio": "x", "mode": "x", "pad_color": "x"}
    err = _refusal(lambda: validate_update(CATALOG, _update("local", "reframe", settings)))
    assert [f["field"] for f in err.details["fields"]] == ["aspect_ratio", "mode", "pad_color"]


def test_a_nul_anywhere_in_otherwise_valid_settings_is_invalid_settings_at_its_path() -> None:
    settings = {"prompt": "make it\x00 winter", "output": {"format": "jpeg"}}
    err = _refusal(lambda: validate_update(CATALOG, _update("gemini", "change_image", settings)))
    assert (err.status, err.code) == (422, "invalid_settings")
    assert err.details == {"fields": [{"field": "prompt", "message": "must not contain NUL characters"}]}


def test_schema_violations_are_reported_before_nul_characters() -> None:
    settings = {"prompt": "a\x00b", "strength": 99}
    err = _refusal(lambda: validate_update(CATALOG, _update("turbotext", "change_image", settings)))
    assert set(_fields(err)) == {"strength"}


def test_nul_paths_finds_nuls_in_values_keys_and_list_items() -> None:
    value = {"a": "ok", "b\x00": "x", "c": {"d": ["fine", "bad\x00"], "e": 1}, "f": None, "g\x00": {"h": "\x00"}}
    assert nul_paths(value) == ["b\x00", "c/d/1", "g\x00"]  # a key with NUL is reported, not looked into
    assert nul_paths("\x00") == [""]
    assert nul_paths({"x": [1, 2.5, True, None]}) == []


def test_unstorable_paths_finds_what_postgresql_cannot_hold() -> None:
    value = {
        "ok": [1, 2.5, "fine", None, True, 1e308],
        "inf": float("inf"),
        "list": [float("-inf"), "x\udfffy"],
        "pair": "\U0001f600",  # a real astral character is fine (a surrogate pair only in JSON's escape)
        "key\ud800": {"never": "looked into"},
        "nested": {"nan": float("nan")},
    }
    assert unstorable_paths(value) == [
        ("inf", "must be a finite number"),
        ("list/0", "must be a finite number"),
        ("list/1", "must not contain unpaired surrogate characters"),
        ("key\ud800", "must not contain unpaired surrogate characters"),
        ("nested/nan", "must be a finite number"),
    ]


def test_a_slot_name_that_cannot_be_stored_is_a_validation_error() -> None:
    update = SlotUpdate(name="Gala \ud83d", provider_id="local", operation_id="resize", settings_json={"width": 100})
    with pytest.raises(AppError) as raised:
        validate_update(CATALOG, update)
    assert (raised.value.status, raised.value.code) == (400, "validation_error")
    assert raised.value.details["fields"] == [
        {"field": "name", "message": "must not contain unpaired surrogate characters"}
    ]


@pytest.mark.parametrize("policy", ["", "fallback", "ORIGINAL", "none"])
def test_a_failure_policy_other_than_error_or_original_is_422(policy: str) -> None:
    err = _refusal(
        lambda: validate_update(CATALOG, _update("local", "reframe", VALID["reframe"], failure_policy=policy))
    )
    assert (err.status, err.code, err.message) == (
        422,
        "invalid_failure_policy",
        "failure_policy must be 'error' or 'original'",
    )


def test_the_checks_run_provider_operation_settings_policy_in_that_order() -> None:
    def code(update: SlotUpdate) -> str:
        return _refusal(lambda: validate_update(CATALOG, update)).code

    assert code(_update("nope", "nope", {"\x00": 1}, failure_policy="bad")) == "unknown_provider"
    assert code(_update("local", "nope", {"\x00": 1}, failure_policy="bad")) == "unsupported_operation"
    assert code(_update("local", "reframe", {}, failure_policy="bad")) == "invalid_settings"
    assert code(_update("gemini", "change_image", {"prompt": "\x00"}, failure_policy="bad")) == "invalid_settings"
    assert code(_update("local", "reframe", {"aspect_ratio": "1:1"}, failure_policy="bad")) == "invalid_failure_policy"


# ---- the images a slot names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider_id", "operation_id", "named"),
    [
        ("local", "frame", {"template_media_id": TEMPLATE}),
        ("gemini", "style_transfer", {"reference_media_id": TEMPLATE}),
        ("turbotext", "style_transfer", {"reference_media_id": TEMPLATE}),
        ("gemini", "combine_images", {"overlay_media_id": OVERLAY}),
        ("turbotext", "face_swap", {"target_media_id": TEMPLATE}),
        ("local", "reframe", {}),
        ("gemini", "change_image", {}),
    ],
)
def test_a_valid_update_names_its_operation_s_media_fields(
    provider_id: str, operation_id: str, named: dict[str, str]
) -> None:
    update = _update(provider_id, operation_id, VALID[operation_id])
    validate_update(CATALOG, update)
    assert media_references(CATALOG, update) == {field: uuid.UUID(value) for field, value in named.items()}


def test_an_empty_media_field_names_nothing_and_other_fields_are_not_media() -> None:
    # Only the schema's `*_media_id` properties are references (a prompt holding a uuid is text).
    assert media_references(CATALOG, _update("gemini", "change_image", {"prompt": TEMPLATE})) == {}
    assert media_references(CATALOG, _update("local", "frame", {"template_media_id": ""})) == {}


def test_all_named_images_found_passes_and_each_missing_one_is_reported() -> None:
    refs = {"template_media_id": uuid.UUID(TEMPLATE), "overlay_media_id": uuid.UUID(OVERLAY)}
    check_media_found(refs, {uuid.UUID(TEMPLATE), uuid.UUID(OVERLAY), uuid.uuid4()})
    check_media_found({}, set())
    err = _refusal(lambda: check_media_found(refs, {uuid.UUID(OVERLAY)}))
    assert (err.status, err.code, err.message) == (
        422,
        "media_not_found",
        "settings name images that are not stored (upload them first)",
    )
    assert err.details == {"fields": [{"field": "template_media_id", "message": "no such media object"}]}
    both = _refusal(lambda: check_media_found(refs, set()))
    assert [f["field"] for f in both.details["fields"]] == ["template_media_id", "overlay_media_id"]


# ---- what a booth slot may run: operations that make an image ---------------------------------------------------

NOT_IMAGES = {("fal", "image_to_video"): "video", ("fal", "finetune"): "record"}


def test_only_fal_s_video_and_fine_tune_operations_make_no_image() -> None:
    offered = [(p.id, op) for p in CATALOG.providers.values() for op in p.operations]
    assert {call: CATALOG.produces(*call) for call in offered if CATALOG.produces(*call) != "image"} == NOT_IMAGES


@pytest.mark.parametrize(("provider_id", "operation_id"), sorted(NOT_IMAGES))
@pytest.mark.parametrize(
    ("shape", "field"),
    [
        ("seed", "operation_id"),
        ("step", "steps/1/operation_id"),
        ("alternative", "steps/0/alternatives/1/operation_id"),
    ],
)
def test_a_slot_refuses_an_operation_that_makes_no_image_at_its_path(
    provider_id: str, operation_id: str, shape: str, field: str
) -> None:
    settings = VALID[operation_id]
    image = {"provider_id": "local", "operation_id": "white_balance", "settings_json": {}}
    bad = {"provider_id": provider_id, "operation_id": operation_id, "settings_json": settings}
    if shape == "seed":
        update = _update(provider_id, operation_id, settings)
    elif shape == "step":
        update = _update("local", "white_balance", {}, steps=[image, bad])
    else:
        update = _update("local", "white_balance", {}, steps=[{**image, "alternatives": [image, bad]}])

    err = _refusal(lambda: validate_update(CATALOG, update, for_slot=True))

    assert (err.status, err.code) == (422, "operation_not_for_slots")
    assert err.details == {"field": field, "produces": NOT_IMAGES[(provider_id, operation_id)]}
    validate_update(CATALOG, update)  # a machine client's task may run it


@pytest.mark.parametrize(
    ("provider_id", "operation_id"),
    [(p.id, op) for p in CATALOG.providers.values() for op in p.operations if (p.id, op) not in NOT_IMAGES],
)
def test_a_slot_accepts_every_operation_that_makes_an_image(provider_id: str, operation_id: str) -> None:
    validate_update(CATALOG, _update(provider_id, operation_id, VALID[operation_id]), for_slot=True)


def test_an_operation_that_makes_no_image_is_refused_before_its_settings_are_checked() -> None:
    update = _update("fal", "image_to_video", {"duration": "\x00"}, failure_policy="bad")
    assert _refusal(lambda: validate_update(CATALOG, update, for_slot=True)).code == "operation_not_for_slots"
