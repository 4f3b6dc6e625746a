"""Issue 16 review (a newcomer's attacks on the offline vision and ArtMancer's API), the pure parts: each test
is a defect found by using the product, and another member of the same kind.

- ArtMancer's smart-mask coordinates reach the `local` smart_mask as given (a point at x 511.9 of a 512 px photo
  is inside it; rounding made it x 512, outside, and the request failed);
- the insertion guide reads a 16-bit grey mask by its range (20000/65535 is dark grey, not white), as the image
  boundary does for every photo;
- a slot or task step whose smart_mask box is inverted or empty, or lies wholly at negative coordinates, or
  whose point is negative, is refused when saved (it could only fail on every photo);
- smart_mask on a photo too small or too thin for GrabCut's two colour models answers the seeds, not a crash.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from boothbridge.artmancer import guide, mapping, models
from boothbridge.catalog import Catalog
from boothbridge.errors import AppError
from boothbridge.slots.rules import SlotUpdate, validate_update
from boothbridge.tasks.model import InputRef

CATALOG = Catalog.load(Path(__file__).resolve().parents[2] / "configs" / "providers.json")


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


# ---- ArtMancer smart-mask coordinates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "setting"),
    [
        ("points", [[511.9, 511.6]], [[511.9, 511.6]]),
        ("background_points", [[511.6, 3.2]], [[511.6, 3.2]]),
        ("bbox", [10.4, 0.6, 511.7, 200.2], [10.4, 0.6, 511.7, 200.2]),
    ],
)
def test_smart_mask_coordinates_reach_the_operation_as_given(field: str, value: Any, setting: Any) -> None:
    body = models.SmartMaskRequest(image="aGk=", auto_detect=True, **{field: value})
    spec = mapping.smart_mask_task(body, InputRef(base64="aGk="))
    assert spec.steps[0].settings[field] == setting


# ---- the insertion guide's masks ----------------------------------------------------------------------------------


def _sixteen_bit_mask() -> bytes:
    """64 x 64, 16-bit grey: dark grey (20000/65535, 78/255) everywhere but a white 10 px square at (10, 10)."""
    values = np.full((64, 64), 20000, np.uint16)
    values[10:20, 10:20] = 65535
    return _png(values)


def _white_square_mask() -> bytes:
    values = np.zeros((64, 64), np.uint8)
    values[10:20, 10:20] = 255
    return _png(values)


def test_a_sixteen_bit_insertion_mask_is_read_by_its_range() -> None:
    red = _png(np.full((8, 8, 3), (255, 0, 0), np.uint8))
    with Image.open(io.BytesIO(guide.insertion_guide(_sixteen_bit_mask(), red))) as made:
        made.load()
        assert made.getbbox() == (10, 10, 20, 20)  # the object only in the white square


def test_a_sixteen_bit_reference_mask_is_read_by_its_range() -> None:
    # The reference: red, with the object (blue) in the square its 16-bit mask marks; only the blue is placed.
    pixels = np.full((64, 64, 3), (255, 0, 0), np.uint8)
    pixels[10:20, 10:20] = (0, 0, 255)
    made_png = guide.insertion_guide(_white_square_mask(), _png(pixels), _sixteen_bit_mask())
    with Image.open(io.BytesIO(made_png)) as made:
        rgb = made.convert("RGB")
        assert rgb.getbbox() == (10, 10, 20, 20)
        assert {rgb.getpixel((x, y)) for x in range(10, 20) for y in range(10, 20)} == {(0, 0, 255)}


# ---- smart_mask geometry saved on a slot or a task ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"bbox": [300, 300, 100, 100]}, "bbox"),
        ({"bbox": [10, 10, 10, 50]}, "bbox"),
        ({"bbox": [-100, -100, -50, -50]}, "bbox"),
        ({"points": [[-5, 10]]}, "points/0"),
        ({"auto_detect": True, "background_points": [[3, -0.5]]}, "background_points/0"),
    ],
)
def test_smart_mask_geometry_that_fits_no_photo_is_refused_when_saved(settings: dict[str, Any], field: str) -> None:
    update = SlotUpdate("Slot", "local", "smart_mask", settings)
    with pytest.raises(AppError) as info:
        validate_update(CATALOG, update, for_slot=True)
    assert info.value.status == 422 and info.value.code == "invalid_settings"
    assert [f["field"] for f in info.value.details["fields"]] == [field]


def test_smart_mask_geometry_past_the_photo_s_edge_is_still_accepted() -> None:
    # A box drawn past the edge means "to the edge" (clipped when the photo is known).
    settings = {"bbox": [-10, -10, 99_999, 99_999], "points": [[0, 0]], "background_points": [[4000, 3000]]}
    validate_update(CATALOG, SlotUpdate("Slot", "local", "smart_mask", settings), for_slot=True)


# ---- smart_mask on tiny and thin photos ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "bbox", "points"),
    [
        ((1, 1), [0, 0, 1, 1], ()),
        ((2, 2), None, ((0.5, 0.5),)),
        ((1000, 2), [0, 0, 1000, 2], ()),
        ((1, 300), [0, 0, 1, 300], ()),
    ],
)
def test_smart_mask_on_a_tiny_or_thin_photo_answers_a_mask(
    size: tuple[int, int], bbox: list[float] | None, points: tuple[tuple[float, float], ...]
) -> None:
    from boothbridge.providers.local import smart_mask as sm

    photo = Image.fromarray(np.random.default_rng(7).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    prompt = sm.MaskPrompt(bbox=None if bbox is None else sm.parse_bbox(bbox, size), points=points)
    mask = sm.smart_mask(photo, prompt)
    assert mask.mode == "L" and mask.size == size
    assert mask.getextrema()[1] >= 128  # the marked object is in it
