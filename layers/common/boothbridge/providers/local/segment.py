"""The person matte behind the `local` provider's `remove_background`: pure NumPy/OpenCV/Pillow around MediaPipe's
selfie-segmentation model (`vision_models.person_probability`); no I/O.

The model answers a coarse probability (it sees 256x256 pixels whatever the photo's size), so a large photo is
never processed whole: the photo is reduced once to a working copy (`WORK_SIDE` pixels on its long side), the
model runs on that copy, and its probability map is fitted to the photo's own edges with a guided
filter (He, Sun, Tang, "Guided Image Filtering", IEEE TPAMI 2013; OpenCV's `cv2.ximgproc.guidedFilter`) at the
working size — soft where the photo is soft (hair), sharp where it has an edge. A contrast curve then sets the
clear background to 0 and the clear person to 255, the border is grown or shrunk and the edge feathered (still at
the working size), and only the final 8-bit matte is enlarged to the photo (bilinear). The full-size photo itself
is touched twice: one reducing resize and one `putalpha`.

Seed 002 (ArtMancer) describes the options this shares with `extract_object`: `border_adjustment` (pixels) and a
blurred (feathered) edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageChops

from boothbridge.images.codec import to_rgb_or_rgba
from boothbridge.providers.local import vision_models
from boothbridge.providers.local.matte import MAX_BORDER_PX, adjust_border
from boothbridge.providers.local.ops import reduced

# px, the working copy's long side: the guided filter's resolution, and what the model is given (MediaPipe resamples
# it to 256x256 itself; given a smaller copy, e.g. 512 px, it found the astronaut on a 3:2 canvas less well).
WORK_SIDE = 1024
# The guided filter's window radius, as a fraction of the working copy's long side (8 px at 1024: two of the
# model's own pixels, how far its coarse edge may be off), and its regularisation in (0..1 intensity)²: texture
# weaker than that is smoothed over, edges stronger than that are followed. Chosen on the astronaut fixture.
GUIDED_RADIUS = 1 / 128
GUIDED_EPS = 1e-2
# The contrast curve: probabilities below LOW are background (alpha 0), above HIGH person (alpha 255), between
# them a smooth ramp — the partly transparent edge (hair) the guided filter found.
LOW, HIGH = 0.4, 0.8
# A face at least this sure (MediaPipe's face detector, 0..1) tells that the photo shows a person: the selfie model
# alone also answers "person" for a cat's close-up or a cup of coffee (seen on scikit-image's samples). 0.6 is
# above the one false face seen on those samples (0.58 on the colour wheel) and far below a booth guest's (>0.9).
FACE_MIN_SCORE = 0.6
MAX_FEATHER_PX = 50.0
DEFAULT_FEATHER_PX = 2.0


@dataclass(frozen=True)
class MatteOptions:
    """How the matte's edge is finished, in pixels of the output (the photo's own size).

    `feather_px` (0..50): the Gaussian blur's sigma applied to the edge; the edge is never harder than the
    enlargement from the working copy makes it (about photo side / `WORK_SIDE` pixels, e.g. 6 px on a 24 MP
    photo). `border_px` (-50..50): grow (positive) or shrink (negative) the kept area, as `extract_object`'s
    `border_adjustment`. `require_face`: cut out only when a face is found (`has_face`), else answer an empty
    matte; off, the segmentation alone decides (guests in masks, seen from behind). Raises ValueError out of
    range."""

    feather_px: float = DEFAULT_FEATHER_PX
    border_px: int = 0
    require_face: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.feather_px <= MAX_FEATHER_PX:
            raise ValueError(f"feather_px must be between 0 and {MAX_FEATHER_PX:g} pixels")
        if not -MAX_BORDER_PX <= self.border_px <= MAX_BORDER_PX:
            raise ValueError(f"border_adjustment must be between -{MAX_BORDER_PX} and {MAX_BORDER_PX} pixels")


def refine(probability: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """Fit a coarse person probability to the edges of `guide`: float32 HxW 0..1 (any size; resized to the
    guide's) and uint8 HxWx3 → alpha float32 HxW 0..1, exactly 0 on clear background and 1 on the clear person."""
    height, width = guide.shape[:2]
    if probability.shape != (height, width):
        probability = cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR)
    guide01 = guide.astype(np.float32) * np.float32(1 / 255)
    radius = max(2, round(max(height, width) * GUIDED_RADIUS))
    fitted = cv2.ximgproc.guidedFilter(guide01, probability.astype(np.float32), radius, GUIDED_EPS)
    ramp = np.clip((fitted - LOW) / (HIGH - LOW), 0.0, 1.0)
    return ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep: no kink where the ramp meets 0 or 1


def has_face(rgb: np.ndarray) -> bool:
    """Whether `rgb` (uint8 HxWx3, a reduced copy is enough: the detectors see 128 or 192 px) shows a face of at
    least `FACE_MIN_SCORE`: the short-range model (within ~2 m, a booth's distance), then the full-range one."""
    return bool(
        vision_models.detect_faces(rgb, min_score=FACE_MIN_SCORE)
        or vision_models.detect_faces(rgb, min_score=FACE_MIN_SCORE, full_range=True)
    )


def person_matte(photo: Image.Image, options: MatteOptions | None = None) -> Image.Image:
    """The people in `photo` (any mode, WxH) as an "L" matte of WxH: 255 person, 0 background, values between
    at the edge. A photo with no person gives an all-0 matte (with `require_face`, else a nearly all-0 one
    unless the model mistakes something for a person): that is the answer, not an error. The photo's own alpha,
    if any, is not applied here (see `remove_background`)."""
    options = options or MatteOptions()
    rgb = photo if photo.mode == "RGB" else to_rgb_or_rgba(photo).convert("RGB")
    work = np.asarray(reduced(rgb, WORK_SIDE))
    factor = max(photo.size) / max(work.shape[:2])  # output pixels per working pixel (1: a small photo)
    if options.require_face and not has_face(work):
        return Image.new("L", photo.size, 0)
    alpha = refine(vision_models.person_probability(work), work)
    matte = Image.fromarray(np.rint(alpha * 255).astype(np.uint8), "L")
    if options.border_px:
        matte = adjust_border(matte, round(options.border_px / factor) or (1 if options.border_px > 0 else -1))
    sigma = options.feather_px / factor
    if sigma >= 0.3:  # below it the kernel is a single tap: the enlargement alone is softer
        # Inward only: a plain blur spreads the person's alpha over the background beside it, which shows as a
        # halo of the old background's colour; the minimum keeps outside pixels as clear as they were.
        sharp = np.asarray(matte)
        matte = Image.fromarray(np.minimum(cv2.GaussianBlur(sharp, (0, 0), sigma), sharp), "L")
    if matte.size != photo.size:
        enlarged = cv2.resize(np.asarray(matte), photo.size, interpolation=cv2.INTER_LINEAR)
        matte = Image.fromarray(enlarged, "L")
    return matte


def remove_background(photo: Image.Image, options: MatteOptions | None = None) -> Image.Image:
    """The people in `photo` (any mode, WxH) on a transparent background: RGBA WxH, the photo's colours with the
    person matte (`person_matte`) as alpha — multiplied by the photo's own alpha when it has one. No person: a
    fully (or nearly fully) transparent image. Raises ValueError for options out of range; `photo` is not
    modified."""
    matte = person_matte(photo, options)
    src = to_rgb_or_rgba(photo)
    if src.mode == "RGBA":
        matte = ImageChops.multiply(matte, src.getchannel("A"))
        result = src.copy()
    else:
        result = src.convert("RGBA")
    result.putalpha(matte)
    return result
