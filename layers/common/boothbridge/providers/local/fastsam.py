"""FastSAM, the optional backend of the `local` provider's `smart_mask` (seed 002 §2.1 runs FastSAM).

Used ONLY when the operator points `FASTSAM_WEIGHTS` (settings `fastsam_weights`) at a FastSAM checkpoint already on
disk (e.g. `FastSAM-s.pt`) and the `ultralytics` package is installed; it is not a project dependency (see README).
Nothing is downloaded. Weights set but absent, or ultralytics not importable, is a final `backend_unavailable`
error: never a silent fall back to GrabCut.

The calls follow Ultralytics' documentation of FastSAM (https://docs.ultralytics.com/models/fast-sam/ and
https://docs.ultralytics.com/reference/models/fastsam/model/): `FastSAM(weights)`, then
`model.predict(source, bboxes=[[x1, y1, x2, y2]], points=[[x, y], ...], labels=[1 | 0, ...], device="cpu",
retina_masks=True, imgsz=1024, conf=0.4, iou=0.9)` — labels 1 foreground, 0 background; a numpy source is BGR, as
OpenCV's; `results[0].masks.data` holds the prompted masks (N x H x W, the source's size with `retina_masks`).
A guidance mask and `auto_detect` become a box prompt (FastSAM takes no mask prompt): the box around the guidance's
white area, or around the detected person / salient region.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

from boothbridge.providers.local.smart_mask import MaskPrompt

Backend = Literal["grabcut", "fastsam"]

_per_thread = threading.local()


class BackendUnavailableError(Exception):
    """The configured FastSAM backend cannot run (weights missing, ultralytics not installed): final."""


def ultralytics_installed() -> bool:
    """Whether `ultralytics` can be imported (checked without importing it)."""
    return importlib.util.find_spec("ultralytics") is not None


def choose_backend(weights: Path | None, *, weights_present: bool, ultralytics_present: bool) -> Backend:
    """The smart-mask backend: GrabCut when no FastSAM weights are configured (`weights` None), else FastSAM.
    Raises BackendUnavailableError when weights are configured but absent (`weights_present` False) or
    ultralytics is not installed: the operator asked for FastSAM, so it is never replaced silently."""
    if weights is None:
        return "grabcut"
    if not weights_present:
        raise BackendUnavailableError(f"FASTSAM_WEIGHTS names {weights}, which is not a file on this machine")
    if not ultralytics_present:
        raise BackendUnavailableError(
            "FASTSAM_WEIGHTS is set but the ultralytics package is not installed (pip install ultralytics)"
        )
    return "fastsam"


def _model(weights: Path) -> Any:
    """This thread's FastSAM model for `weights`, loaded once (a model is not shared between threads)."""
    models: dict[Path, Any] = getattr(_per_thread, "models", None) or {}
    _per_thread.models = models
    if weights not in models:
        from ultralytics import FastSAM

        models[weights] = FastSAM(str(weights))
    return models[weights]


def prompt_kwargs(prompt: MaskPrompt) -> dict[str, Any]:
    """FastSAM's prompt arguments for `prompt` (photo px): `bboxes`, and `points` with `labels` (1 object, 0
    background). The guidance mask / prior, which FastSAM cannot take, are the caller's to turn into `bbox`."""
    kwargs: dict[str, Any] = {}
    if prompt.bbox is not None:
        kwargs["bboxes"] = [[round(v) for v in prompt.bbox]]
    points = [*prompt.points, *prompt.background_points]
    if points:
        kwargs["points"] = [[round(x), round(y)] for x, y in points]
        kwargs["labels"] = [1] * len(prompt.points) + [0] * len(prompt.background_points)
    if not kwargs:
        raise ValueError("FastSAM needs a box or points")
    return kwargs


def fastsam_mask(bgr: np.ndarray, weights: Path, prompt: MaskPrompt) -> np.ndarray:
    """The object FastSAM finds in `bgr` (uint8 HxWx3, BGR) from `prompt`: float32 HxW 0..1 (the union of the
    prompted masks; all 0 when it finds none)."""
    results = _model(weights).predict(
        np.ascontiguousarray(bgr),
        device="cpu",
        retina_masks=True,
        imgsz=1024,
        conf=0.4,
        iou=0.9,
        verbose=False,
        **prompt_kwargs(prompt),
    )
    height, width = bgr.shape[:2]
    masks = results[0].masks if results else None
    if masks is None or len(masks.data) == 0:
        return np.zeros((height, width), dtype=np.float32)
    union = np.asarray(masks.data.cpu().numpy(), dtype=np.float32).max(axis=0)
    if union.shape != (height, width):  # pragma: no cover - retina_masks answers the source's size
        import cv2

        union = cv2.resize(union, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(union, 0.0, 1.0)
