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

from boothbridge.artmancer import mapping, models
from boothbridge.catalog import Catalog
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
