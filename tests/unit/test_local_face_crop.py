"""`face_crop` (boothbridge.providers.local.faces) on real photos — scikit-image's astronaut (one face, box about
(178, 83, 95, 95) at 512 px), coffee (no face), the astronaut twice side by side — and as pure geometry."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageChops
from skimage import data

from boothbridge.providers.base import ImageInput, ProviderError, ProviderRequest
from boothbridge.providers.local.adapter import LocalProvider
from boothbridge.providers.local.faces import crop_padded, detect_face_boxes, face_crop, face_crop_box

FACE = (178, 83, 273, 178)  # the astronaut's face (left, top, right, bottom) at 512 px, by eye


def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="module")
def faces() -> list[tuple[float, float, float, float]]:
    return detect_face_boxes(astronaut())


def contains(box: tuple[int, int, int, int], inner: tuple[float, float, float, float], slack: float = 0) -> bool:
    return (
        box[0] <= inner[0] + slack
        and box[1] <= inner[1] + slack
        and box[2] >= inner[2] - slack
        and box[3] >= inner[3] - slack
    )


def test_the_astronaut_has_one_face_where_expected(faces: list[tuple[float, float, float, float]]) -> None:
    assert len(faces) == 1
    assert all(abs(a - b) <= 8 for a, b in zip(faces[0], FACE, strict=True))


@pytest.mark.parametrize("ratio", [(1, 1), (9, 16), (16, 9), (3, 4), (21, 9)])
@pytest.mark.parametrize("size", [1.0, 0.5, 0.2])
def test_the_crop_contains_the_face_and_is_centred_on_it_where_the_photo_allows(
    faces: list[tuple[float, float, float, float]], ratio: tuple[int, int], size: float
) -> None:
    box = face_crop_box(512, 512, faces, ratio, size)
    assert contains(box, faces[0]) and contains(box, FACE, slack=8)
    width, height = box[2] - box[0], box[3] - box[1]
    assert abs(width / height - ratio[0] / ratio[1]) < 0.02
    assert 0 <= box[0] and 0 <= box[1] and box[2] <= 512 and box[3] <= 512  # one face always fits: no padding
    centre = ((faces[0][0] + faces[0][2]) / 2, (faces[0][1] + faces[0][3]) / 2)
    for axis in (0, 1):
        at_edge = box[axis] == 0 or box[axis + 2] == 512
        assert at_edge or abs((box[axis] + box[axis + 2]) / 2 - centre[axis]) <= 1


@pytest.mark.parametrize("aspect_ratio", ["1:1", "9:16", "4:3"])
def test_the_operation_crops_that_box(faces: list[tuple[float, float, float, float]], aspect_ratio: str) -> None:
    photo = astronaut()
    out = face_crop(photo, aspect_ratio, size=0.5)
    ratio = tuple(int(v) for v in aspect_ratio.split(":"))
    expected = photo.crop(face_crop_box(512, 512, faces, (ratio[0], ratio[1]), 0.5))
    assert out.size == expected.size and ImageChops.difference(out, expected).getbbox() is None


def test_a_larger_copy_gives_the_face_at_its_scale() -> None:
    big = astronaut().resize((2048, 2048), Image.Resampling.LANCZOS)
    found = detect_face_boxes(big)
    assert len(found) == 1
    box = face_crop_box(2048, 2048, found, (9, 16), 0.3)
    assert contains(box, tuple(v * 4 for v in FACE), slack=32)
    assert face_crop(big, "9:16", size=0.3).size == (box[2] - box[0], box[3] - box[1])


@pytest.mark.parametrize("photo", [Image.fromarray(data.coffee()), Image.new("RGB", (600, 400), (90, 120, 150))])
def test_no_face_gives_a_centred_crop(photo: Image.Image) -> None:
    out = face_crop(photo, "1:1")
    assert out.size == (400, 400)
    assert ImageChops.difference(out, photo.crop((100, 0, 500, 400))).getbbox() is None
    assert face_crop(photo, "1:1", size=0.5).size == (200, 200)


def test_two_faces_are_both_inside_padding_past_the_edge_when_needed() -> None:
    twice = Image.fromarray(np.concatenate([data.astronaut(), data.astronaut()], axis=1))
    found = detect_face_boxes(twice)
    assert len(found) == 2
    for ratio in ((1, 1), (9, 16), (16, 9)):
        box = face_crop_box(1024, 512, found, ratio, 1.0)
        assert all(contains(box, face) for face in found)
    out = face_crop(twice, "9:16", pad_color="#ff0000")
    box = face_crop_box(1024, 512, found, (9, 16), 1.0)
    assert out.size == (box[2] - box[0], box[3] - box[1]) and box[1] < 0  # taller than the photo: padded
    assert out.getpixel((out.width // 2, 0)) == (255, 0, 0)


@pytest.mark.parametrize(
    ("size", "faces", "ratio", "scale", "expected"),
    [
        ((400, 200), [], (1, 1), 1.0, (100, 0, 300, 200)),  # no face: centred
        ((400, 200), [(10, 50, 60, 100)], (1, 1), 1.0, (0, 0, 200, 200)),  # centred on the face, kept inside
        ((400, 200), [(280, 80, 320, 120)], (1, 1), 0.5, (250, 50, 350, 150)),  # a tighter crop, centred
        ((400, 200), [(280, 80, 320, 120)], (1, 1), 0.1, (280, 80, 320, 120)),  # never smaller than the face
        ((400, 200), [(0, 0, 40, 40), (360, 0, 400, 40)], (1, 1), 1.0, (0, -180, 400, 220)),  # padded above/below
        ((400, 200), [(-30, 150, 30, 230)], (16, 9), 0.5, (0, 100, 178, 200)),  # a box past the edge is clipped
    ],
)
def test_geometry(
    size: tuple[int, int],
    faces: list[tuple[float, float, float, float]],
    ratio: tuple[int, int],
    scale: float,
    expected: tuple[int, int, int, int],
) -> None:
    assert face_crop_box(*size, faces, ratio, scale) == expected


@pytest.mark.parametrize("size", [0, -0.5, 1.5])
def test_a_size_out_of_range_is_refused(size: float) -> None:
    with pytest.raises(ValueError, match="size"):
        face_crop_box(400, 200, [], (1, 1), size)


def test_crop_padded_fills_the_outside() -> None:
    out = crop_padded(Image.new("RGBA", (10, 10), (0, 0, 255, 128)), (-5, 0, 10, 10), (0, 255, 0))
    assert (
        out.size == (15, 10) and out.getpixel((0, 0)) == (0, 255, 0, 255) and out.getpixel((5, 0)) == (0, 0, 255, 128)
    )


def _request(settings: dict[str, object]) -> ProviderRequest:
    buf = io.BytesIO()
    astronaut().save(buf, "JPEG", quality=95)
    return ProviderRequest(
        job_id="job-1",
        attempt=1,
        operation_id="face_crop",
        settings=settings,
        source=ImageInput(data=buf.getvalue(), mime="image/jpeg"),
    )


async def test_through_the_local_provider(faces: list[tuple[float, float, float, float]]) -> None:
    result = await LocalProvider().run(_request({"aspect_ratio": "9:16", "size": 0.4, "pad_color": "#000000"}))
    assert result.image.mime == "image/jpeg"
    out = Image.open(io.BytesIO(result.image.data))
    box = face_crop_box(512, 512, faces, (9, 16), 0.4)
    assert out.size == (box[2] - box[0], box[3] - box[1])


@pytest.mark.parametrize(
    "settings",
    [{}, {"aspect_ratio": "9-16"}, {"aspect_ratio": "1:1", "size": 0}, {"aspect_ratio": "1:1", "pad_color": "red"}],
)
async def test_bad_settings_are_settings_invalid(settings: dict[str, object]) -> None:
    with pytest.raises(ProviderError) as caught:
        await LocalProvider().run(_request(settings))
    assert caught.value.code == "settings_invalid" and not caught.value.retryable
