"""Follow-ups of issue 16's review, the pure parts:

- a smart_mask prompt's geometry (a point inside the photo, a box that keeps some area once clipped to it) is ONE
  check (`providers.local.prompt_geometry`, no OpenCV) that the worker (`smart_mask.parse_prompt`), ArtMancer's
  smart-mask (`mapping.check_smart_mask_fits`, before anything is stored) and the slot rules (photo unknown) use;
- ArtMancer's bodies take numbers as JSON numbers only: a numeric string or a boolean is a validation error at
  its field (and a boolean field takes true/false only);
- a task cancelled (or failed) before any worker took it reports `current_step` 0, in the status and the stream;
- the local provider carries its FastSAM setting: two providers built with different settings in one process
  each run as configured (no module global, "last build wins").
"""

from __future__ import annotations

import io
import math
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pydantic import BaseModel, ValidationError

from boothbridge.artmancer import mapping, models, results
from boothbridge.catalog import Catalog
from boothbridge.errors import AppError
from boothbridge.providers.base import ImageInput, ProviderError, ProviderRequest
from boothbridge.providers.local import adapter
from boothbridge.providers.local.prompt_geometry import clip_box, prompt_problems
from boothbridge.settings import Settings
from boothbridge.slots.rules import SlotUpdate, validate_update
from boothbridge.tasks.model import InputRef, TaskView
from tests.unit.test_cold_import import loaded_after_import

CATALOG = Catalog.load(Path(__file__).resolve().parents[2] / "configs" / "providers.json")
PHOTO = (120, 90)

# ---- one geometry check -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "size", "paths"),
    [
        ({"points": [[120, 45]]}, PHOTO, ["points/0"]),
        ({"points": [[119.9, 89.9], [0, 0]]}, PHOTO, []),
        ({"points": [[60, 45]], "background_points": [[5, 90.5]]}, PHOTO, ["background_points/0"]),
        ({"bbox": [130, 0, 200, 80]}, PHOTO, ["bbox"]),
        ({"bbox": [10, 10, 10.5, 10.5]}, PHOTO, ["bbox"]),
        ({"bbox": [119.5, 0, 200, 90]}, PHOTO, ["bbox"]),  # half a pixel left once clipped
        ({"bbox": [-50, -20, 600, 512]}, PHOTO, []),  # past the edges: clipped, kept
        ({"bbox": [130, 0, 200, 80], "points": [[1, 1], [500, 1]]}, PHOTO, ["bbox", "points/1"]),
        ({"bbox": None, "points": None, "auto_detect": True}, PHOTO, []),
        # no photo yet (a slot's settings): only what fails on every photo
        ({"bbox": [-10, -10, 99_999, 99_999], "points": [[4000, 3000]]}, None, []),
        ({"bbox": [-5, 0, 0.5, 10]}, None, ["bbox"]),
        ({"bbox": [-100, -100, -50, -50]}, None, ["bbox"]),
        ({"bbox": [10, 10, 5, 50]}, None, ["bbox"]),
        ({"points": [[-1, 0]]}, None, ["points/0"]),
        # malformed values
        ({"bbox": [1, 2, 3]}, PHOTO, ["bbox"]),
        ({"bbox": [0, 0, math.nan, 5]}, PHOTO, ["bbox"]),
        ({"points": [["1", "2"]]}, PHOTO, ["points/0"]),
        ({"points": [[True, 2]]}, PHOTO, ["points/0"]),
        ({"points": [[1, 2, 3]]}, PHOTO, ["points/0"]),
        ({"points": [[1, 2]] * 101}, PHOTO, ["points"]),
    ],
)
def test_prompt_problems(settings: dict[str, Any], size: tuple[int, int] | None, paths: list[str]) -> None:
    assert [path for path, _ in prompt_problems(settings, size)] == paths


def test_a_problem_names_the_photo_and_the_point() -> None:
    ((_, why),) = prompt_problems({"points": [[120, 45]]}, PHOTO)
    assert why == "point (120, 45) lies outside the 120x90 photo"
    assert clip_box([-50, -20, 600, 512], (512, 512)) == (0.0, 0.0, 512.0, 512.0)


@pytest.mark.parametrize(
    "settings",
    [{"points": [[120, 45]]}, {"bbox": [130, 0, 200, 80]}, {"bbox": [10, 10, 10.5, 10.5]}, {"points": [["1", 2]]}],
)
def test_the_worker_refuses_what_the_check_refuses(settings: dict[str, Any]) -> None:
    from boothbridge.providers.local.smart_mask import parse_prompt

    ((_, why),) = prompt_problems(settings, PHOTO)
    with pytest.raises(ValueError) as caught:
        parse_prompt(settings, PHOTO, None)
    assert str(caught.value) == why


def test_the_worker_takes_what_the_check_takes() -> None:
    from boothbridge.providers.local.smart_mask import parse_prompt

    prompt = parse_prompt({"bbox": [-5, 10, 500, 80], "points": [[119.9, 3]], "background_points": []}, PHOTO, None)
    assert (prompt.bbox, prompt.points, prompt.background_points) == ((0.0, 10.0, 120.0, 80.0), ((119.9, 3.0),), ())


@pytest.mark.parametrize("bbox", [[-5, 0, 0.5, 10], [10, 10, 10.5, 10.5]])
def test_a_slot_box_that_keeps_less_than_a_pixel_on_every_photo_is_refused_when_saved(bbox: list[float]) -> None:
    # Both passed the slot rules before and then failed every booth photo (settings_invalid at run time).
    with pytest.raises(AppError) as info:
        validate_update(CATALOG, SlotUpdate("Slot", "local", "smart_mask", {"bbox": bbox}), for_slot=True)
    assert (info.value.status, info.value.code) == (422, "invalid_settings")
    assert [f["field"] for f in info.value.details["fields"]] == ["bbox"]


def _smart_mask_spec(**fields: Any) -> Any:
    return mapping.smart_mask_task(models.SmartMaskRequest(image="aGk=", **fields), InputRef(base64="aGk="))


def test_artmancer_refuses_a_prompt_that_misses_the_image_before_submitting() -> None:
    spec = _smart_mask_spec(bbox=[34, 24, 86, 66], points=[[60, 45], [60, 95]])
    with pytest.raises(AppError) as info:
        mapping.check_smart_mask_fits(spec, PHOTO)
    err = info.value
    assert (err.status, err.code) == (400, "invalid_settings") and "120x90" in err.message
    assert err.details == {"fields": [{"field": "points.1", "message": "point (60, 95) lies outside the 120x90 photo"}]}
    mapping.check_smart_mask_fits(_smart_mask_spec(bbox=[34, 24, 86, 66], points=[[60, 45]]), PHOTO)
    mapping.check_smart_mask_fits(spec, None)  # size unknown: any image (the worker judges it)


@pytest.mark.parametrize("module", ["boothbridge.providers.local.prompt_geometry", "boothbridge.slots.rules"])
def test_the_check_loads_no_image_library(module: str) -> None:
    # The web functions (slot saves, ArtMancer's routes) import it; only the worker has OpenCV.
    assert loaded_after_import(module, ("cv2", "numpy", "PIL")) == []


# ---- strict numbers in ArtMancer's bodies -------------------------------------------------------------------------

GENERATION = {"task_type": "white-balance", "input_image": "aGk="}
SMART_MASK = {"image": "aGk=", "auto_detect": True}
EXTRACT = {"image": "aGk=", "mask": "aGk="}


@pytest.mark.parametrize(
    ("model", "base", "changes", "fields"),
    [
        (models.GenerationRequest, GENERATION, {"width": "512"}, "width"),
        (models.GenerationRequest, GENERATION, {"height": True}, "height"),
        (models.GenerationRequest, GENERATION, {"num_inference_steps": "10"}, "num_inference_steps"),
        (models.GenerationRequest, GENERATION, {"guidance_scale": "1.5"}, "guidance_scale"),
        (models.GenerationRequest, GENERATION, {"true_cfg_scale": True}, "true_cfg_scale"),
        (models.GenerationRequest, GENERATION, {"seed": "3"}, "seed"),
        (models.GenerationRequest, GENERATION, {"width": 512.5}, "width"),
        (models.GenerationRequest, GENERATION, {"enable_flowmatch_scheduler": "true"}, "enable_flowmatch_scheduler"),
        (models.SmartMaskRequest, SMART_MASK, {"bbox": ["10", "20", "30", "40"]}, "bbox.0 bbox.1 bbox.2 bbox.3"),
        (models.SmartMaskRequest, SMART_MASK, {"bbox": [10, 20, True, 40]}, "bbox.2"),
        (models.SmartMaskRequest, SMART_MASK, {"points": [["1", "2"]]}, "points.0.0 points.0.1"),
        (models.SmartMaskRequest, SMART_MASK, {"background_points": [[1, "2"]]}, "background_points.0.1"),
        (models.SmartMaskRequest, SMART_MASK, {"border_adjustment": "5"}, "border_adjustment"),
        (models.SmartMaskRequest, SMART_MASK, {"use_blur": 1}, "use_blur"),
        (models.SmartMaskRequest, SMART_MASK, {"auto_detect": "true", "bbox": [1, 1, 5, 5]}, "auto_detect"),
        (models.ExtractObjectRequest, EXTRACT, {"blur_radius": "3"}, "blur_radius"),
        (models.ExtractObjectRequest, EXTRACT, {"border_adjustment": False}, "border_adjustment"),
        (models.ExtractObjectRequest, EXTRACT, {"use_blur": "yes"}, "use_blur"),
    ],
)
def test_a_number_as_text_or_a_boolean_is_refused_at_its_field(
    model: type[BaseModel], base: dict[str, Any], changes: dict[str, Any], fields: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate({**base, **changes})
    assert [".".join(str(p) for p in e["loc"]) for e in caught.value.errors()] == fields.split()


def test_json_numbers_are_taken() -> None:
    body = models.GenerationRequest.model_validate({**GENERATION, "width": 512.0, "guidance_scale": 2, "seed": 7})
    assert (body.width, body.guidance_scale, body.seed) == (512, 2.0, 7)
    mask = models.SmartMaskRequest.model_validate({**SMART_MASK, "bbox": [1, 2.5, 30, 40], "points": [[3, 4.5]]})
    assert (mask.bbox, mask.points) == ((1.0, 2.5, 30.0, 40.0), [(3.0, 4.5)])
    assert models.ExtractObjectRequest.model_validate({**EXTRACT, "blur_radius": 4}).blur_radius == 4.0


# ---- current_step of a task that never ran ------------------------------------------------------------------------

CREATED = datetime(2026, 11, 30, tzinfo=UTC)


def _view(status: str, step_index: int = 0, started: bool = False) -> TaskView:
    return TaskView(
        id=uuid.UUID(int=1),
        api="artmancer",
        client_ref={"endpoint": "generate"},
        status=status,
        phase="error" if status in ("failed", "cancelled") else "pending",
        step_index=step_index,
        step_count=2,
        progress=0.0 if step_index == 0 else 0.5,
        outputs=[],
        result_data=None,
        error=None,
        deliveries=[],
        cost=None,
        created_at=CREATED,
        started_at=CREATED if started else None,
        finished_at=None if status == "queued" else CREATED,
    )


@pytest.mark.parametrize(
    ("status", "step_index", "started", "step"),
    [
        ("queued", 0, False, 0),
        ("cancelled", 0, False, 0),  # cancelled while still queued
        ("failed", 0, False, 0),  # its deadline passed before a worker took it
        ("cancelled", 0, True, 1),  # cancelled in its first step
        ("failed", 1, True, 2),
    ],
)
def test_a_task_that_never_ran_reports_step_0(status: str, step_index: int, started: bool, step: int) -> None:
    view = _view(status, step_index, started)
    assert results.status_body(view)["current_step"] == step
    assert results.stream_event(view)["current_step"] == step


# ---- the local provider's configuration ---------------------------------------------------------------------------


def _smart_mask_request() -> ProviderRequest:
    photo = Image.new("RGB", PHOTO, (128, 128, 128))
    photo.paste((220, 30, 30), (40, 30, 80, 60))
    out = io.BytesIO()
    photo.save(out, "PNG")
    source = ImageInput(data=out.getvalue(), mime="image/png")
    return ProviderRequest(
        job_id="job-1", attempt=1, operation_id="smart_mask", settings={"bbox": [34, 24, 86, 66]}, source=source
    )


async def test_two_local_providers_each_run_as_built(tmp_path: Path) -> None:
    missing = tmp_path / "FastSAM-s.pt"  # configured, but not there: smart_mask refuses to guess
    with_fastsam = adapter.build(Settings(_env_file=None, fastsam_weights=missing), CATALOG)  # type: ignore[call-arg]
    with_grabcut = adapter.build(Settings(_env_file=None, fastsam_weights=None), CATALOG)  # type: ignore[call-arg]
    # Built second, the GrabCut provider does not change the first (nor the first the second, built before it).
    with pytest.raises(ProviderError) as caught:
        await with_fastsam.run(_smart_mask_request())
    assert caught.value.code == "backend_unavailable" and str(missing) in caught.value.message
    result = await with_grabcut.run(_smart_mask_request())
    with Image.open(io.BytesIO(result.image.data)) as mask:
        assert mask.size == PHOTO and mask.getpixel((60, 45)) >= 200 and mask.getpixel((5, 5)) <= 50
    assert (with_fastsam.fastsam_weights, with_grabcut.fastsam_weights) == (missing, None)
