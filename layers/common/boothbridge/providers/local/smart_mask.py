"""Smart mask with GrabCut: the `local` provider's `smart_mask` core (pure numpy/OpenCV/Pillow, no I/O).

Source: seed 002 (ArtMancer), §2.1 "Generate Smart Mask" — a mask (white = object) from a box `bbox`
[x_min, y_min, x_max, y_max] and/or points [[x, y], ...] and/or `auto_detect`, with a guidance mask, `border_adjustment`
and `use_blur` — where ArtMancer runs FastSAM; here OpenCV's GrabCut (Rother et al. 2004; `cv2.grabCut`, seeded
by a label mask, `GC_INIT_WITH_MASK`, as in https://docs.opencv.org/4.x/d8/d83/tutorial_py_grabcut.html), which
needs no weights. FastSAM is the optional backend of `fastsam.py`.

GrabCut costs ~1-2.5 s at 512x512, so it runs on a copy reduced to WORK_SIDE px; the mask is upscaled to a copy of
at most REFINE_SIDE px, its edge refined there by a guided filter (He et al.; `cv2.ximgproc.guidedFilter`) against
the photo, then upscaled to the photo's size. Border adjustment and blur as `matte.extract_object`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageFilter

from boothbridge.providers.local.matte import MAX_BLUR_PX, adjust_border, mask_to_l
from boothbridge.providers.local.ops import reduced
from boothbridge.providers.local.prompt_geometry import BoxF, Point, clip_box, prompt_problems

WORK_SIDE = 224  # GrabCut's working copy, long side (px)
ITERATIONS = 3  # GrabCut's iterations
REFINE_SIDE = 1600  # the guided filter's working copy, long side (px)
SEED_RADIUS = 0.015  # a point marks a disc of this fraction of the working copy's long side (at least 2 px)
POINTS_REACH = 0.15  # points alone: the probable object is their box grown by this fraction of the long side
PRIOR_BAND = 0.04  # a prior's uncertain band, each side of its 0.5 edge: this fraction of the long side
SMALL_PART = 0.005  # islands and holes under this fraction of the working copy are removed / filled


@dataclass(frozen=True)
class MaskPrompt:
    """What says where the object is, in photo pixels (x right, y down; boxes (x_min, y_min, x_max, y_max)).

    `bbox`: the object is inside, everything outside is background. `points` / `background_points`: surely
    object / surely background. `guidance` ("L", any size: resized to the photo): white probably object, black
    probably background. `prior` (float32 HxW 0..1, any size): the probability of object, e.g. a person model's."""

    bbox: BoxF | None = None
    points: tuple[Point, ...] = ()
    background_points: tuple[Point, ...] = ()
    guidance: Image.Image | None = None
    prior: np.ndarray | None = None

    def says_where(self) -> bool:
        """Whether anything places the object (background points alone do not)."""
        return self.bbox is not None or bool(self.points) or self.guidance is not None or self.prior is not None


def parse_bbox(value: Any, size: tuple[int, int]) -> BoxF:
    """A `bbox` setting [x_min, y_min, x_max, y_max] (photo px) clipped to the photo of `size` (W, H). Raises
    ValueError when it does not fit it (`prompt_geometry.prompt_problems`)."""
    problems = prompt_problems({"bbox": value}, size)
    if problems:
        raise ValueError(problems[0][1])
    return clip_box(value, size)


def parse_prompt(settings: Mapping[str, Any], size: tuple[int, int], guidance: Image.Image | None) -> MaskPrompt:
    """The box (clipped) and points of `settings` with the guidance mask, for a photo of `size` (W, H). Raises
    ValueError, every problem in its message, when they are malformed or do not fit the photo
    (`prompt_geometry.prompt_problems`: the same check ArtMancer's API and the slot rules make)."""
    problems = prompt_problems(settings, size)
    if problems:
        raise ValueError("; ".join(why for _, why in problems))
    bbox = settings.get("bbox")
    points, background = settings.get("points") or (), settings.get("background_points") or ()
    return MaskPrompt(
        bbox=None if bbox is None else clip_box(bbox, size),
        points=tuple((float(x), float(y)) for x, y in points),
        background_points=tuple((float(x), float(y)) for x, y in background),
        guidance=None if guidance is None else mask_to_l(guidance),
    )


def salient_box(rgb: np.ndarray) -> BoxF | None:
    """The box (x_min, y_min, x_max, y_max, px of `rgb`, uint8 HxWx3) around the most salient region by OpenCV's
    spectral-residual saliency (Hou & Zhang 2007; `cv2.saliency`, no weights), grown by 10%; None if nothing
    stands out (a flat image)."""
    detector = cv2.saliency.StaticSaliencySpectralResidual.create()
    ok, saliency = detector.computeSaliency(rgb)
    if not ok or float(saliency.max()) <= 1e-6:
        return None
    height, width = rgb.shape[:2]
    smooth = cv2.GaussianBlur((saliency / saliency.max() * 255).astype(np.uint8), (0, 0), max(width, height) / 50)
    _, salient = cv2.threshold(smooth, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    count, _, stats, _ = cv2.connectedComponentsWithStats(salient, connectivity=8)
    if count < 2:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[best, :4])
    gx, gy = w * 0.1, h * 0.1
    return max(0.0, x - gx), max(0.0, y - gy), min(float(width), x + w + gx), min(float(height), y + h + gy)


def initial_labels(size: tuple[int, int], prompt: MaskPrompt, scale: float) -> np.ndarray:
    """GrabCut's seed labels (uint8 HxW for `size` (W, H) of the working copy, `scale` working px per photo px):
    GC_BGD outside the box, GC_PR_FGD inside; guidance / prior make PR_FGD (>= 0.5) or PR_BGD; points alone a
    PR_FGD box around them; points GC_FGD and background points GC_BGD discs. Raises ValueError when nothing is
    probably object."""
    width, height = size
    box_area = np.zeros((height, width), dtype=bool)
    if prompt.bbox is not None:
        x0, y0, x1, y1 = (v * scale for v in prompt.bbox)
        box_area[int(y0) : max(int(y0) + 1, round(y1)), int(x0) : max(int(x0) + 1, round(x1))] = True
        labels = np.where(box_area, cv2.GC_PR_FGD, cv2.GC_BGD).astype(np.uint8)
    else:
        box_area[:] = True
        labels = np.full((height, width), cv2.GC_PR_BGD, dtype=np.uint8)
    if prompt.guidance is not None:
        guide = np.asarray(prompt.guidance.resize(size, Image.Resampling.BILINEAR)) >= 128
        labels[box_area] = np.where(guide[box_area], cv2.GC_PR_FGD, cv2.GC_PR_BGD)
        box_area &= guide  # the prior, if any, only within what the guidance marks
    if prompt.prior is not None:
        likely = cv2.resize(prompt.prior.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) >= 0.5
        band = max(1, round(PRIOR_BAND * max(width, height)))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
        core = cv2.erode(likely.astype(np.uint8), kernel).astype(bool)
        near = cv2.dilate(likely.astype(np.uint8), kernel).astype(bool)
        # A trimap: the model's sure core and its far surround are fixed, GrabCut decides the band by colour.
        trimap = np.where(core, cv2.GC_FGD, np.where(likely, cv2.GC_PR_FGD, np.where(near, cv2.GC_PR_BGD, cv2.GC_BGD)))
        labels[box_area] = trimap[box_area]
    if prompt.points and prompt.bbox is None and prompt.guidance is None and prompt.prior is None:
        reach = POINTS_REACH * max(width, height)
        xs, ys = [p[0] * scale for p in prompt.points], [p[1] * scale for p in prompt.points]
        x0, x1 = max(0, int(min(xs) - reach)), min(width, int(max(xs) + reach) + 1)
        y0, y1 = max(0, int(min(ys) - reach)), min(height, int(max(ys) + reach) + 1)
        labels[y0:y1, x0:x1] = cv2.GC_PR_FGD
    radius = max(2, round(SEED_RADIUS * max(width, height)))
    for points, label in ((prompt.points, cv2.GC_FGD), (prompt.background_points, cv2.GC_BGD)):
        for x, y in points:
            cv2.circle(labels, (int(x * scale), int(y * scale)), radius, int(label), thickness=-1)
    if not np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD)).any():
        raise ValueError("the prompt marks no part of the photo as the object")
    if not np.isin(labels, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():
        edge = max(1, round(0.02 * max(width, height)))  # a box of the whole photo: its rim stands for background
        rim = np.ones((height, width), dtype=bool)
        rim[edge:-edge, edge:-edge] = False
        inside = ~rim & np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD))
        if inside.any():  # a photo too small or thin for a rim keeps its box (`grabcut` answers the seeds)
            labels[rim & (labels == cv2.GC_PR_FGD)] = cv2.GC_PR_BGD
    return labels


def _clean(object_mask: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Drop islands that hold no sure-object seed and are small (< SMALL_PART of the image, or < 10% of the
    largest part), and fill small holes (not touching the edge). Boolean HxW in and out."""
    small = SMALL_PART * object_mask.size
    count, parts, stats, _ = cv2.connectedComponentsWithStats(object_mask.astype(np.uint8), connectivity=8)
    if count > 1:
        areas = stats[1:, cv2.CC_STAT_AREA]
        seeded = set(np.unique(parts[labels == cv2.GC_FGD]).tolist()) - {0}
        keep = [i + 1 for i, area in enumerate(areas) if i + 1 in seeded or area >= max(small, 0.1 * areas.max())]
        object_mask = np.isin(parts, keep)
    count, holes, stats, _ = cv2.connectedComponentsWithStats((~object_mask).astype(np.uint8), connectivity=4)
    height, width = object_mask.shape
    for i in range(1, count):
        x, y, w, h, area = stats[i]
        inner = x > 0 and y > 0 and x + w < width and y + h < height
        if inner and area < small and not (labels[holes == i] == cv2.GC_BGD).any():
            object_mask[holes == i] = True
    return object_mask


def grabcut(rgb: np.ndarray, labels: np.ndarray, iterations: int = ITERATIONS) -> np.ndarray:
    """GrabCut of `rgb` (uint8 HxWx3) from seed `labels` (see `initial_labels`): the object as float32 HxW 0/1."""
    labels = labels.copy()
    seeded = np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD))
    if seeded.all() or not seeded.any():
        # GrabCut models the object and the background by their colours and needs pixels of both (OpenCV asserts
        # it): with only one, as on a photo of a pixel or two, the seeds are the answer.
        return seeded.astype(np.float32)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's k-means draws from this thread's RNG: the same photo gives the same mask
    # No rectangle with GC_INIT_WITH_MASK: the labels say it all (an empty one, as OpenCV's stubs want a sequence).
    cv2.grabCut(np.ascontiguousarray(rgb), labels, (0, 0, 0, 0), bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    found = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    return _clean(found, labels).astype(np.float32)


def refine_edge(guide: np.ndarray, mask: np.ndarray, radius: int, eps: float = 1e-3) -> np.ndarray:
    """`mask` (float32 HxW 0..1, any size: resized to `guide`) with its edge snapped to the edges of `guide`
    (uint8 HxWx3) by a guided filter of `radius` px; float32 0..1."""
    height, width = guide.shape[:2]
    if mask.shape != (height, width):
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    guide_f = guide.astype(np.float32) / 255.0
    return np.clip(cv2.ximgproc.guidedFilter(guide_f, mask, radius, eps), 0.0, 1.0)


def finish(mask: Image.Image, size: tuple[int, int], border_px: int = 0, blur_px: float = 0.0) -> Image.Image:
    """The mask ("L") at `size`, its object grown / shrunk by `border_px` (-50..50, `matte.adjust_border`) and
    feathered by a Gaussian blur of `blur_px` (0..50). Raises ValueError out of range."""
    if not 0 <= blur_px <= MAX_BLUR_PX:
        raise ValueError(f"blur_radius must be between 0 and {MAX_BLUR_PX:g} pixels")
    if mask.size != size:
        mask = mask.resize(size, Image.Resampling.BILINEAR)
    mask = adjust_border(mask, border_px)
    return mask.filter(ImageFilter.GaussianBlur(blur_px)) if blur_px > 0 else mask


def smart_mask(photo: Image.Image, prompt: MaskPrompt, border_px: int = 0, blur_px: float = 0.0) -> Image.Image:
    """The object's mask for `photo` (any mode, WxH): "L" WxH, 255 object, 0 background, soft at the edge.

    GrabCut from `prompt` on a WORK_SIDE copy, refined on a REFINE_SIDE copy, upscaled, then `finish`ed. Raises
    ValueError when the prompt places nothing, marks nothing as object, or the border/blur are out of range."""
    if not prompt.says_where():
        raise ValueError("smart_mask needs a bbox, points, a guidance mask or auto_detect")
    if not 0 <= blur_px <= MAX_BLUR_PX:
        raise ValueError(f"blur_radius must be between 0 and {MAX_BLUR_PX:g} pixels")
    rgb = photo.convert("RGB")
    mid = reduced(rgb, REFINE_SIDE)
    small = reduced(mid, WORK_SIDE)
    labels = initial_labels(small.size, prompt, small.width / photo.width)
    found = grabcut(np.asarray(small), labels)
    radius = max(2, round(2 * mid.width / small.width))
    soft = refine_edge(np.asarray(mid), found, radius)
    mask = Image.fromarray((soft * 255 + 0.5).astype(np.uint8), "L")
    return finish(mask, photo.size, border_px, blur_px)
