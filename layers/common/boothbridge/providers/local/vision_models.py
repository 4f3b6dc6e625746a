"""The packaged vision models of the `local` provider: MediaPipe's selfie segmentation and face detection.

Both models ship inside the `mediapipe` 0.10.14 wheel (`mediapipe/modules/selfie_segmentation/*.tflite`,
`mediapipe/modules/face_detection/*.tflite`), so nothing is downloaded at run time. They are run through MediaPipe's
Python "solutions" API, documented at
https://github.com/google-ai-edge/mediapipe/blob/v0.10.14/docs/solutions/selfie_segmentation.md and
https://github.com/google-ai-edge/mediapipe/blob/v0.10.14/docs/solutions/face_detection.md
(input: an RGB `uint8` array HxWx3; selfie segmentation answers `segmentation_mask`, float32 HxW in 0..1; face
detection answers `detections` with a `relative_bounding_box` and a `score` each).

`mediapipe` (0.5 s and ~100 MB on import) is imported on first use, never at module import: only the worker that
runs a vision operation pays for it. A solution object holds a MediaPipe graph that must not be used by two threads
at once, and the local provider runs operations in `asyncio.to_thread`'s pool: each thread builds its own, once.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

_import_lock = threading.Lock()
_per_thread = threading.local()
_mediapipe: ModuleType | None = None


@dataclass(frozen=True)
class FaceBox:
    """One detected face: its box in pixels of the image it was found in (left, top, width, height; may reach past
    the image's edges by a few pixels, as the detector reports it) and the detector's score, 0..1."""

    left: float
    top: float
    width: float
    height: float
    score: float


def _mp() -> ModuleType:
    """The `mediapipe` module, imported once per process (its import is not thread-safe)."""
    global _mediapipe
    with _import_lock:
        if _mediapipe is None:
            # mediapipe 0.10.14 uses protobuf APIs that protobuf 4.x marks deprecated, on import and on every
            # `process` call: not ours to fix, and not worth a line in the worker's log each time.
            warnings.filterwarnings("ignore", message=r".*GetPrototype\(\) is deprecated", category=UserWarning)
            warnings.filterwarnings("ignore", message="MessageFactory class is deprecated", category=UserWarning)
            import mediapipe

            _mediapipe = mediapipe
        return _mediapipe


def _solution(name: str, factory: Any) -> Any:
    """This thread's solution object `name`, built by `factory(mediapipe)` on first use."""
    found = getattr(_per_thread, name, None)
    if found is None:
        found = factory(_mp())
        setattr(_per_thread, name, found)
    return found


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 array HxWx3, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def person_probability(rgb: np.ndarray, *, landscape: bool = False) -> np.ndarray:
    """The probability that each pixel shows a person: float32 HxW in 0..1, for `rgb` (uint8 HxWx3, any size; the
    model itself sees 256x256, or 144x256 with `landscape`). Work on a reduced copy of a large photo: the answer is
    no finer than the model's input. Raises ValueError for an array of another shape or type."""
    selection = 1 if landscape else 0
    segmenter = _solution(
        f"selfie_{selection}",
        lambda mp: mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=selection),
    )
    result = segmenter.process(_rgb(rgb))
    mask = result.segmentation_mask
    if mask is None:  # pragma: no cover - the solution always answers a mask for an image
        return np.zeros(rgb.shape[:2], dtype=np.float32)
    return np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)


def detect_faces(rgb: np.ndarray, *, min_score: float = 0.5, full_range: bool = False) -> list[FaceBox]:
    """The faces in `rgb` (uint8 HxWx3), best score first, boxes in its pixels. The short-range model (default)
    finds faces within ~2 m of the camera, as at a booth; `full_range` uses the sparse full-range model (~5 m).
    `min_score` 0..1. Raises ValueError for an array of another shape or type."""
    selection = 1 if full_range else 0
    detector = _solution(
        f"faces_{selection}_{min_score:.3f}",
        lambda mp: mp.solutions.face_detection.FaceDetection(
            model_selection=selection, min_detection_confidence=min_score
        ),
    )
    height, width = rgb.shape[:2]
    result = detector.process(_rgb(rgb))
    faces = []
    for detection in result.detections or ():
        box = detection.location_data.relative_bounding_box
        faces.append(
            FaceBox(
                left=box.xmin * width,
                top=box.ymin * height,
                width=box.width * width,
                height=box.height * height,
                score=float(detection.score[0]) if detection.score else 0.0,
            )
        )
    return sorted(faces, key=lambda face: face.score, reverse=True)
