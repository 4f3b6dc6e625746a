"""A task's status in AIGE's phase names (seeds 000/001; issue 15). Pure: plain values in, a name out.

pending                      queued for a worker (new, between steps, before a retry)
processing_<...>             a worker runs a step's operation, or the job waits for the provider's callback:
                             the spec's `phase_names[operation]`, else `DEFAULT_PHASES[operation]`, else
                             `processing_<operation_id>`
uploading_image / _video     the worker stores the step's output (the job row's `uploading_image` phase), or
                             the task succeeded and its output is still being delivered to its writeUrl
                             (`_video` when the output is a video)
done                         succeeded, and every delivery (if any) delivered
error                        failed, cancelled, or a delivery failed
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

PENDING, DONE, ERROR = "pending", "done", "error"
UPLOADING_IMAGE, UPLOADING_VIDEO = "uploading_image", "uploading_video"

# AIGE's phase per operation (fal's operation ids; the local and other providers' fall back to processing_<op>).
DEFAULT_PHASES: Mapping[str, str] = {
    "avatar": "processing_avatar_model",
    "remove_background": "processing_background_removal",
    "upscale": "processing_upscale",
    "image_to_video": "processing_video",
    "reframe": "processing_reframe_model",
    "edit": "processing_refine_model",
    "generate": "processing_background_model",
    "generate_finetuned": "processing_background_model",
    "overlay": "processing_overlay_model",
}
# Operations whose output is a video (the uploading phase says `uploading_video`).
VIDEO_OPERATIONS = frozenset({"image_to_video"})


def processing_phase(operation_id: str, phase_names: Mapping[str, str] | None) -> str:
    """The phase shown while `operation_id` runs."""
    if phase_names and operation_id in phase_names:
        return phase_names[operation_id]
    return DEFAULT_PHASES.get(operation_id, f"processing_{operation_id}")


def task_phase(
    status: str,
    operation_id: str,
    phase_column: str | None,
    *,
    phase_names: Mapping[str, str] | None = None,
    output_mime: str | None = None,
    deliveries: Iterable[str] = (),
) -> str:
    """The AIGE phase of a task: `status` is its job's status, `operation_id` the operation it runs now (the last
    one once ended), `phase_column` the job row's `phase` (`uploading_image` while a worker stores an output),
    `output_mime` the primary output's type, `deliveries` the statuses of its deliveries (`pending`,
    `delivered`, `failed`)."""
    states = list(deliveries)
    if status in ("failed", "cancelled") or "failed" in states:
        return ERROR
    if status == "succeeded":
        if "pending" in states:
            is_video = (output_mime or "").startswith("video/") or operation_id in VIDEO_OPERATIONS
            return UPLOADING_VIDEO if is_video else UPLOADING_IMAGE
        return DONE
    if status == "queued":
        return PENDING
    if phase_column == UPLOADING_IMAGE:
        return UPLOADING_VIDEO if operation_id in VIDEO_OPERATIONS else UPLOADING_IMAGE
    return processing_phase(operation_id, phase_names)
