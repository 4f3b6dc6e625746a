"""Face-aware crop: the `local` provider's `face_crop` (issue 16, item 1).

The crop has the asked aspect ratio (W:H), holds every detected face box whole and is centred on the faces as far
as the photo allows. `size` (0 < size <= 1) makes it a fraction of the largest crop of that ratio the photo holds,
for tighter portraits, but never smaller than the faces need. Where the faces cannot fit inside the photo at that
ratio (e.g. two guests at the far left and right of a landscape photo cropped to 9:16), the crop reaches past the
photo's edge and the outside is filled with `pad_color`: a face is never cut. No face: a centred crop of that size,
never an error.

Faces are found by MediaPipe's detectors (`vision_models.detect_faces`, packaged in the `mediapipe` wheel) on a
reduced copy; their boxes are scaled back to the photo's pixels. The geometry (`face_crop_box`) is pure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from boothbridge.images.codec import to_rgb_or_rgba
from boothbridge.providers.local import ops, vision_models
from boothbridge.providers.local.ops import NAMED_RATIOS, parse_color, parse_ratio

# Long side (px) of the reduced copy faces are detected on: the detectors themselves see 128 or 192 px.
DETECT_SIDE = 960
# Two detections overlapping more than this (intersection over union) are one face seen by both models.
SAME_FACE_IOU = 0.3

Box = tuple[float, float, float, float]
"""A box (left, top, right, bottom) in pixels; right and bottom exclusive."""


def face_crop_box(
    width: int, height: int, faces: Sequence[Box], ratio: tuple[int, int], size: float = 1.0
) -> tuple[int, int, int, int]:
    """The crop (left, top, right, bottom; integers, may reach past the width x height photo) of ratio
    `ratio` (W, H) that contains every face box (clipped to the photo first), centred on their union as far as the
    photo allows, else (no face) centred on the photo. Its size is `size` (0..1] of the largest crop of that
    ratio inside the photo, grown (same ratio) until the faces fit. Raises ValueError for a bad size or ratio."""
    rw, rh = ratio
    if rw <= 0 or rh <= 0:
        raise ValueError("the aspect ratio's sides must be positive")
    if not 0 < size <= 1:
        raise ValueError("size must be greater than 0 and at most 1")
    if width * rh > height * rw:  # the photo is wider than the ratio: the largest crop keeps the height
        crop_w, crop_h = height * rw / rh * size, height * size
    else:
        crop_w, crop_h = width * size, width * rh / rw * size
    clipped = [
        (max(0.0, f[0]), max(0.0, f[1]), min(float(width), f[2]), min(float(height), f[3]))
        for f in faces
        if min(float(width), f[2]) > max(0.0, f[0]) and min(float(height), f[3]) > max(0.0, f[1])
    ]
    if not clipped:
        cw, ch = _whole(crop_w, width), _whole(crop_h, height)
        left, top = _placed(width, cw, None), _placed(height, ch, None)
        return left, top, left + cw, top + ch
    union = (
        min(f[0] for f in clipped),
        min(f[1] for f in clipped),
        max(f[2] for f in clipped),
        max(f[3] for f in clipped),
    )
    span_w = math.ceil(union[2]) - math.floor(union[0])  # whole pixels, as the crop's edges are
    span_h = math.ceil(union[3]) - math.floor(union[1])
    grow = max(1.0, span_w / crop_w, span_h / crop_h)
    cw = max(_whole(crop_w * grow, width), span_w)
    ch = max(_whole(crop_h * grow, height), span_h)
    left = _placed(width, cw, (union[0], union[2]))
    top = _placed(height, ch, (union[1], union[3]))
    return left, top, left + cw, top + ch


def _whole(length: float, limit: int) -> int:
    """`length` as whole pixels: rounded, and no more than the photo's side when it fits (`limit`)."""
    if length <= limit + 1e-6:
        return max(1, min(limit, round(length)))
    return math.ceil(length - 1e-6)


def _placed(photo: int, crop: int, faces: tuple[float, float] | None) -> int:
    """The start of a `crop`-long window along a `photo`-long side: centred on the faces' span (start, end) or
    on the photo, kept inside the photo when it fits (covering it when longer), and always holding the faces."""
    if faces is None:
        return (photo - crop) // 2
    start = math.floor((faces[0] + faces[1]) / 2 - crop / 2 + 0.5)
    start = min(max(start, min(0, photo - crop)), max(0, photo - crop))
    return min(max(start, math.ceil(faces[1]) - crop), math.floor(faces[0]))


def crop_padded(img: Image.Image, box: tuple[int, int, int, int], pad_color: tuple[int, int, int]) -> Image.Image:
    """`img` (RGB or RGBA) cut to `box`; the parts of the box outside the image are `pad_color` (opaque)."""
    left, top, right, bottom = box
    if left >= 0 and top >= 0 and right <= img.width and bottom <= img.height:
        return img.crop(box)
    fill = (*pad_color, 255) if img.mode == "RGBA" else pad_color
    canvas = Image.new(img.mode, (right - left, bottom - top), fill)
    inside = (max(left, 0), max(top, 0), min(right, img.width), min(bottom, img.height))
    if inside[2] > inside[0] and inside[3] > inside[1]:
        canvas.paste(img.crop(inside), (inside[0] - left, inside[1] - top))
    return canvas


def _iou(a: Box, b: Box) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detect_face_boxes(photo: Image.Image, min_score: float = 0.5) -> list[Box]:
    """Every face in `photo` (any mode and size) as boxes in its pixels. Both MediaPipe models run on a copy
    reduced to DETECT_SIDE: the short-range one (faces near the camera, as at a booth) and the full-range one
    (smaller faces, e.g. a group); a face both find is kept once."""
    reduced = ops.reduced(photo.convert("RGB"), DETECT_SIDE)
    rgb = np.asarray(reduced)
    sx, sy = photo.width / reduced.width, photo.height / reduced.height
    found: list[Box] = []
    for full_range in (False, True):
        for face in vision_models.detect_faces(rgb, min_score=min_score, full_range=full_range):
            box = (face.left * sx, face.top * sy, (face.left + face.width) * sx, (face.top + face.height) * sy)
            if all(_iou(box, kept) <= SAME_FACE_IOU for kept in found):
                found.append(box)
    return found


def face_crop(
    photo: Image.Image, aspect_ratio: str, size: float = 1.0, pad_color: str = "#ffffff", min_score: float = 0.5
) -> Image.Image:
    """`photo` (any mode) cropped to `aspect_ratio` (`W:H` or one of `ops.NAMED_RATIOS`) around every detected
    face (see the module and `face_crop_box`); RGB or RGBA. Raises ValueError for a bad ratio, size or colour."""
    ratio = parse_ratio(NAMED_RATIOS.get(aspect_ratio, aspect_ratio))
    pad = parse_color(pad_color)
    if not 0 < size <= 1:
        raise ValueError("size must be greater than 0 and at most 1")
    src = to_rgb_or_rgba(photo)
    box = face_crop_box(src.width, src.height, detect_face_boxes(src, min_score), ratio, size)
    return crop_padded(src, box, pad)
