"""The `local` provider's mask and face operations as the adapter calls them: `(photo, request) -> image`.

`smart_mask` (seed 002 §2.1; `smart_mask.py`, optionally `fastsam.py`) answers a grey mask the photo's size (PNG,
white = object); `face_crop` (`faces.py`) a crop around every face. The adapter (`providers.local.adapter`) merges
`operations(options)`, `PNG_ONLY` and `REQUIRED_MEDIA`: each `LocalProvider` builds its own table from its own
`MaskOptions` (the composition root's settings, passed to its constructor), so two providers in one process each
run as configured.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from boothbridge.providers.base import ProviderError, ProviderRequest
from boothbridge.providers.local import ops, vision_models
from boothbridge.providers.local.faces import face_crop
from boothbridge.providers.local.inputs import Operation, decode_input
from boothbridge.providers.local.matte import feather_radius

if TYPE_CHECKING:
    from boothbridge.providers.local.smart_mask import MaskPrompt

# OpenCV (`cv2`, and `smart_mask`/`fastsam`, which import it) is imported when an operation runs: every function
# builds the local provider (bootstrap.build_providers), and only the worker's image has OpenCV (infra/README.md,
# "The worker image").

AUTO_SIDE = 512  # auto_detect looks for people / salient regions on a copy of this long side (px)
PERSON_SHARE = 0.02  # auto_detect: a person is there when this share of the photo is more likely person than not
CENTRAL_MARGIN = 0.1  # auto_detect with neither a person nor a salient region: the photo less this margin


@dataclass(frozen=True)
class MaskOptions:
    """How a provider's `smart_mask` runs. `fastsam_weights`: the FastSAM checkpoint (a `.pt` file; settings
    `fastsam_weights`, FASTSAM_WEIGHTS), None for GrabCut (`fastsam.choose_backend`)."""

    fastsam_weights: Path | None = None


def _auto_detect(photo: Image.Image, prompt: MaskPrompt) -> MaskPrompt:
    """`prompt` with the main object added: people first (the person model's probability as GrabCut's probable
    object, within any box), else, without a box, the salient region's box (else the photo's centre)."""
    reduced = ops.reduced(photo.convert("RGB"), AUTO_SIDE)
    rgb = np.asarray(reduced)
    from boothbridge.providers.local.smart_mask import salient_box

    person = vision_models.person_probability(rgb)
    if float((person >= 0.5).mean()) >= PERSON_SHARE:
        return replace(prompt, prior=person)
    if prompt.bbox is not None:
        return prompt
    box = salient_box(rgb)
    if box is None:
        w, h = reduced.size
        box = (w * CENTRAL_MARGIN, h * CENTRAL_MARGIN, w * (1 - CENTRAL_MARGIN), h * (1 - CENTRAL_MARGIN))
    sx, sy = photo.width / reduced.width, photo.height / reduced.height
    return replace(prompt, bbox=(box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy))


def _white_box(mask: np.ndarray, size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """The box (photo px, `size` W x H) around the >= 0.5 part of `mask` (float 0..1, any size), or None."""
    ys, xs = np.nonzero(mask >= 0.5)
    if len(xs) == 0:
        return None
    sx, sy = size[0] / mask.shape[1], size[1] / mask.shape[0]
    return xs.min() * sx, ys.min() * sy, (xs.max() + 1) * sx, (ys.max() + 1) * sy


def _fastsam(photo: Image.Image, prompt: MaskPrompt, weights: Path) -> Image.Image:
    """FastSAM's mask ("L", photo size): the guidance mask or the person prior as a box prompt when no box."""
    import cv2

    from boothbridge.providers.local import fastsam

    if prompt.bbox is None:
        for likely in (prompt.guidance, prompt.prior):
            if likely is not None:
                array = np.asarray(likely, dtype=np.float32)
                box = _white_box(array / 255.0 if isinstance(likely, Image.Image) else array, photo.size)
                prompt = replace(prompt, bbox=box)
                break
    bgr = cv2.cvtColor(np.asarray(photo.convert("RGB")), cv2.COLOR_RGB2BGR)
    found = fastsam.fastsam_mask(bgr, weights, prompt)
    return Image.fromarray((found * 255 + 0.5).astype(np.uint8), "L")


def _smart_mask(photo: Image.Image, request: ProviderRequest, *, options: MaskOptions) -> Image.Image:
    from boothbridge.providers.local import fastsam
    from boothbridge.providers.local.smart_mask import finish, parse_prompt, smart_mask

    s = request.settings
    media = request.media.get("mask_media_id")
    guidance = None if media is None else decode_input(media, what="guidance mask")
    prompt = parse_prompt(s, photo.size, guidance)
    auto = bool(s.get("auto_detect", False))
    if not (prompt.says_where() or auto):
        raise ValueError("smart_mask needs a bbox, points, a guidance mask (mask_media_id) or auto_detect")
    border = int(s.get("border_adjustment", 0))
    blur = feather_radius(s)
    weights = options.fastsam_weights
    try:
        backend = fastsam.choose_backend(
            weights,
            weights_present=weights is not None and weights.is_file(),
            ultralytics_present=fastsam.ultralytics_installed(),
        )
    except fastsam.BackendUnavailableError as exc:
        raise ProviderError("backend_unavailable", str(exc), retryable=False) from exc
    if auto:
        prompt = _auto_detect(photo, prompt)
    if backend == "fastsam" and weights is not None:
        return finish(_fastsam(photo, prompt, weights), photo.size, border, blur)
    return smart_mask(photo, prompt, border, blur)


def _face_crop(photo: Image.Image, request: ProviderRequest) -> Image.Image:
    s = request.settings
    if "aspect_ratio" not in s:
        raise ValueError("aspect_ratio is required")
    return face_crop(
        photo, str(s["aspect_ratio"]), size=float(s.get("size", 1)), pad_color=str(s.get("pad_color", "#ffffff"))
    )


def operations(options: MaskOptions) -> dict[str, Operation]:
    """The operations of this module as a provider configured with `options` runs them."""
    return {"smart_mask": partial(_smart_mask, options=options), "face_crop": _face_crop}


# Operations whose result is always a PNG (they make transparency or a mask), whatever the `output` setting.
PNG_ONLY: frozenset[str] = frozenset({"smart_mask"})
# operation -> (the named image it cannot run without, the message of its `template_missing` error)
REQUIRED_MEDIA: dict[str, tuple[str, str]] = {}
