"""A photo stored sideways (EXIF orientation 2-8: a camera held for a portrait, a portrait booth's every photo) goes
to the `local` provider as stored and is decoded once there, at the size the operation needs, and turned upright
as it is decoded: the image boundary no longer decodes, turns and re-encodes it first (`prepare_input(...,
as_stored=True)`), and the libvips path turns it as Pillow's `normalise` does (`fast._UPRIGHT_OPS`).

Found with `bench.big_photo`: a 61 MP camera JPEG stored with orientation 6 took 1.4 s and +503 MiB of server memory
through a local resize slot, against 0.4 s and +51 MiB stored upright."""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image

from boothbridge.images import boundary, codec
from boothbridge.providers.local import fast as local_fast
from boothbridge.providers.local.adapter import LocalProvider
from tests.support.images import PERSONAL_MARKERS, camera_exif, encoded
from tests.unit.test_local_decode_once import decoded, mean_difference, request, textured

LIMIT = 100_000_000


def sideways(upright: Image.Image, orientation: int) -> bytes:
    """`upright` stored as a camera with EXIF `orientation` stores it: the pixels turned so that applying the
    orientation gives `upright` back (the inverse of the orientation's transpose)."""
    inverse = {
        1: None,
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }[orientation]
    stored = upright if inverse is None else upright.transpose(inverse)
    return encoded(stored, "JPEG", quality=95, exif=camera_exif(orientation).tobytes())


# An upright portrait with a red mark at the left edge, below the middle: a wrong turn or flip moves it.
UPRIGHT = textured(600, 900)
UPRIGHT.paste((255, 0, 0), (0, 400, 120, 520))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(
    ("operation", "settings", "size", "mark"),
    [
        ("resize", {"width": 200}, (200, 300), (5, 150)),  # decoded at 1/2: libvips' shrink-on-load
        ("reframe", {"aspect_ratio": "1:1", "mode": "crop"}, (600, 600), (5, 300)),  # rows 150-750 of 900
    ],
    ids=["resize", "crop"],
)
async def test_libvips_turns_a_sideways_photo_upright_as_pillow_does(
    orientation: int,
    operation: str,
    settings: dict[str, Any],
    size: tuple[int, int],
    mark: tuple[int, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = sideways(UPRIGHT, orientation)
    engines: list[int] = []
    real = local_fast._execute
    monkeypatch.setattr(local_fast, "_execute", lambda *a: engines.append(a[3]) or real(*a))
    by_vips = await LocalProvider().run(request(operation, settings, data))
    assert engines == [orientation]  # the libvips path took it, with its orientation
    assert isinstance(by_vips.image, codec.EncodedHere)
    monkeypatch.setattr(local_fast, "_vips", lambda: None)
    by_pillow = await LocalProvider().run(request(operation, settings, data))
    a, b = decoded(by_vips.image.data), decoded(by_pillow.image.data)
    assert a.size == b.size == size
    assert mean_difference(a, b) < 1.0
    red = a.getpixel(mark)
    assert red[0] > 200 and red[1] < 60, red  # type: ignore[index]  # the mark where the upright photo has it
    assert b"Exif" not in by_vips.image.data[:200]  # nothing of the camera's EXIF comes out


@pytest.mark.parametrize("orientation", [1, 6, 8, 3])
def test_a_photo_for_a_decoding_provider_crosses_as_stored(orientation: int) -> None:
    data = sideways(UPRIGHT, orientation)
    ready = boundary.prepare_input(data, LIMIT, as_stored=True)
    assert ready.data is data and ready.changes == () and ready.mime == "image/jpeg"
    # For any other provider it is turned upright and stripped before it leaves (as before).
    other = boundary.prepare_input(data, LIMIT)
    assert not any(marker in other.data for marker in PERSONAL_MARKERS)
    assert codec.upright_size(other.data) == (600, 900)


def test_a_photo_crossing_as_stored_is_still_held_to_the_pixel_limit_and_must_be_an_image() -> None:
    data = sideways(UPRIGHT, 6)
    with pytest.raises(boundary.TooManyPixelsError):
        boundary.prepare_input(data, 600 * 900 - 1, as_stored=True)
    with pytest.raises(boundary.UndecodableImageError):
        boundary.prepare_input(b"not an image at all", LIMIT, as_stored=True)
