"""The person matte (`providers.local.segment`, the local `remove_background`) on a real photo of a person:
scikit-image's astronaut (512x512), against a mask made by hand once (tests/fixtures/vision/README.md)."""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as samples

from boothbridge.providers.local import segment
from boothbridge.providers.local.segment import MatteOptions

FIXTURE = Path(__file__).parents[1] / "fixtures" / "vision" / "astronaut_person_mask.png"
# (x, y) in the 512x512 astronaut: well inside the background (wall, flag, shuttle, black backdrop) ...
BACKGROUND = [(100, 100), (400, 40), (60, 120), (470, 300), (440, 250), (10, 20)]
# ... and well inside the person (face, hair, suit, badge, the helmet she holds)
PERSON = [(225, 100), (230, 40), (200, 400), (170, 380), (120, 300), (420, 450)]


@functools.cache
def astronaut() -> Image.Image:
    return Image.fromarray(samples.astronaut())


@functools.cache
def fixture_mask() -> np.ndarray:
    """The hand-made person mask: bool 512x512."""
    return np.asarray(Image.open(FIXTURE).convert("L")) >= 128


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def alpha_of(img: Image.Image) -> np.ndarray:
    assert img.mode == "RGBA"
    return np.asarray(img.getchannel("A"))


def test_the_fixture_is_the_astronauts_person() -> None:
    mask = fixture_mask()
    assert mask.shape == (512, 512)
    assert all(mask[y, x] for x, y in PERSON) and not any(mask[y, x] for x, y in BACKGROUND)


def test_the_cut_out_keeps_the_person_and_removes_the_background() -> None:
    result = segment.remove_background(astronaut())

    assert result.size == (512, 512)
    alpha = alpha_of(result)
    score = iou(alpha >= 128, fixture_mask())
    print(f"remove_background IoU against the hand-made mask: {score:.4f}")
    assert score >= 0.9
    assert [alpha[y, x] for x, y in BACKGROUND] == [0] * len(BACKGROUND)
    assert [alpha[y, x] for x, y in PERSON] == [255] * len(PERSON)
    # The colours are the photo's own.
    assert np.array_equal(np.asarray(result.convert("RGB")), samples.astronaut())


def test_a_large_photo_is_cut_out_through_the_reduced_copy() -> None:
    big = astronaut().resize((2560, 2560), Image.Resampling.LANCZOS)  # 5x: past WORK_SIDE

    alpha = alpha_of(segment.remove_background(big))

    expected = np.asarray(Image.fromarray(fixture_mask()).resize(big.size, Image.Resampling.NEAREST))
    assert iou(alpha >= 128, expected) >= 0.9
    assert [alpha[y * 5, x * 5] for x, y in BACKGROUND] == [0] * len(BACKGROUND)
    assert [alpha[y * 5, x * 5] for x, y in PERSON] == [255] * len(PERSON)


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_a_photo_without_a_person_gives_a_transparent_result(name: str) -> None:
    photo = Image.fromarray(getattr(samples, name)())

    alpha = alpha_of(segment.remove_background(photo))

    assert alpha.shape == (photo.height, photo.width)
    assert alpha.max() == 0


def test_without_the_face_requirement_the_model_alone_decides() -> None:
    # The selfie model takes a good part of the coffee photo for a person: why a face is required by default.
    coffee = Image.fromarray(samples.coffee())
    loose = alpha_of(segment.remove_background(coffee, MatteOptions(require_face=False)))
    assert (loose >= 128).mean() > 0.05
    # On a photo of a person the requirement changes nothing.
    strict = alpha_of(segment.remove_background(astronaut()))
    assert np.array_equal(strict, alpha_of(segment.remove_background(astronaut(), MatteOptions(require_face=False))))


def _distance_to_edge(binary: np.ndarray) -> np.ndarray:
    """Each pixel's distance (px) to the nearest pixel on the other side of `binary`'s edge."""
    inside = cv2.distanceTransform(binary.astype(np.uint8), cv2.DIST_L2, 5)
    outside = cv2.distanceTransform((~binary).astype(np.uint8), cv2.DIST_L2, 5)
    return np.maximum(inside, outside)


@pytest.mark.parametrize("feather_px", [2.0, 6.0])
def test_feathering_changes_alpha_at_the_edge_only(feather_px: float) -> None:
    sharp = alpha_of(segment.remove_background(astronaut(), MatteOptions(feather_px=0)))
    soft = alpha_of(segment.remove_background(astronaut(), MatteOptions(feather_px=feather_px)))

    changed = soft != sharp
    assert changed.any()
    # Inside the person, only a band along its edge fades: the Gaussian's reach (3 sigma) from a pixel that was
    # not fully opaque already.
    opaque = sharp == 255
    reach = cv2.distanceTransform(opaque.astype(np.uint8), cv2.DIST_L2, 5)
    assert reach[changed & opaque].max() <= 3 * feather_px + 1
    assert (changed & opaque).sum() > 0.5 * changed.sum()


def test_partial_alpha_lies_along_edges() -> None:
    alpha = alpha_of(segment.remove_background(astronaut()))

    partial = (alpha > 0) & (alpha < 255)
    assert 0 < partial.mean() < 0.08
    # Nearly all of it within the guided filter's window (8 px here) and the feather's reach of an edge; the rest
    # is where the model itself is unsure (a flag stripe against the orange sleeve, the photo's corners).
    near = _distance_to_edge(alpha >= 128)[partial] <= 8 + 3 * segment.DEFAULT_FEATHER_PX
    assert near.mean() > 0.95


def test_more_feather_makes_a_wider_edge_that_fades_inward() -> None:
    sharp = alpha_of(segment.remove_background(astronaut(), MatteOptions(feather_px=0)))
    soft = alpha_of(segment.remove_background(astronaut(), MatteOptions(feather_px=4)))

    partial = lambda a: int(((a > 0) & (a < 255)).sum())  # noqa: E731
    assert partial(soft) > 1.5 * partial(sharp)
    # Inward: the feather never makes a background pixel more opaque than it was (no halo of the old backdrop).
    assert (soft <= sharp).all()


def test_border_adjustment_grows_and_shrinks_the_cut_out() -> None:
    area = {
        border: int((alpha_of(segment.remove_background(astronaut(), MatteOptions(border_px=border))) >= 128).sum())
        for border in (-4, 0, 4)
    }
    assert area[-4] < area[0] < area[4]


def test_an_rgba_photos_own_alpha_is_multiplied_in() -> None:
    photo = astronaut().convert("RGBA")
    own = Image.new("L", photo.size, 255)
    own.paste(0, (0, 0, 256, 512))  # the left half already transparent
    own.paste(128, (256, 0, 512, 256))  # the top right quarter half transparent
    photo.putalpha(own)

    alpha = alpha_of(segment.remove_background(photo)).astype(int)
    plain = alpha_of(segment.remove_background(astronaut())).astype(int)

    assert alpha[:, :256].max() == 0
    assert np.abs(alpha[:256, 256:] - plain[:256, 256:] * 128 / 255).max() <= 1
    assert np.array_equal(alpha[256:, 256:], plain[256:, 256:])


def test_refine_fits_a_coarse_probability_to_the_photos_edge() -> None:
    # A 1024 px wide photo (the guided filter's window is then 8 px) whose left 500 columns are dark and the rest
    # light; the coarse probability a blurred step 5 px to the right of that edge, as the model's 256 px answer is.
    guide = np.full((64, 1024, 3), 220, np.uint8)
    guide[:, :500] = 30
    coarse = np.zeros((64, 1024), np.float32)
    coarse[:, :505] = 1.0
    coarse = cv2.GaussianBlur(coarse, (0, 0), 4)

    alpha = segment.refine(coarse, guide)

    assert alpha.shape == (64, 1024) and alpha.dtype == np.float32
    # The person ends where the photo's edge is (the coarse step was at 0.5 five pixels further), and the ramp
    # from 1 to 0 is a third as wide as the coarse one.
    assert (alpha[:, :500] == 1.0).all() and (alpha[:, 505:] == 0.0).all()
    assert coarse[32, 504] > 0.5
    partial = lambda row: int(((row > 0.01) & (row < 0.99)).sum())  # noqa: E731
    assert 3 * partial(alpha[32]) <= partial(coarse[32])


def test_refine_resizes_the_probability_to_the_guide() -> None:
    guide = np.zeros((120, 80, 3), np.uint8)
    assert segment.refine(np.ones((30, 20), np.float32), guide).shape == (120, 80)


@pytest.mark.parametrize(
    ("feather_px", "border_px", "message"),
    [(-1.0, 0, "feather_px"), (50.5, 0, "feather_px"), (2.0, 51, "border_adjustment"), (2.0, -51, "border")],
)
def test_options_out_of_range_are_refused(feather_px: float, border_px: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MatteOptions(feather_px=feather_px, border_px=border_px)


def test_the_input_photo_is_not_modified() -> None:
    photo = astronaut().copy()
    before = photo.tobytes()
    segment.remove_background(photo)
    assert (photo.mode, photo.tobytes()) == ("RGB", before)
