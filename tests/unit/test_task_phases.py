"""A task's AIGE phase (`boothbridge.tasks.phases.task_phase`) from its job and its deliveries."""

from __future__ import annotations

import pytest

from boothbridge.tasks.phases import DEFAULT_PHASES, task_phase


@pytest.mark.parametrize(
    ("status", "operation", "column", "deliveries", "mime", "expected"),
    [
        ("queued", "avatar", None, [], None, "pending"),
        ("running", "avatar", None, [], None, "processing_avatar_model"),
        ("running", "remove_background", None, [], None, "processing_background_removal"),
        ("running", "upscale", None, [], None, "processing_upscale"),
        ("waiting_provider", "image_to_video", None, [], None, "processing_video"),
        ("running", "reframe", None, [], None, "processing_reframe_model"),
        ("running", "edit", None, [], None, "processing_refine_model"),
        ("running", "resize", None, [], None, "processing_resize"),
        ("running", "edit", "uploading_image", [], None, "uploading_image"),
        ("running", "image_to_video", "uploading_image", [], None, "uploading_video"),
        ("succeeded", "edit", None, ["pending"], "image/png", "uploading_image"),
        ("succeeded", "image_to_video", None, ["pending"], "video/mp4", "uploading_video"),
        ("succeeded", "edit", None, ["delivered"], "image/png", "done"),
        ("succeeded", "edit", None, [], "image/png", "done"),
        ("succeeded", "edit", None, ["failed"], "image/png", "error"),
        ("failed", "edit", None, [], None, "error"),
        ("cancelled", "edit", None, ["pending"], None, "error"),
    ],
)
def test_phase(
    status: str, operation: str, column: str | None, deliveries: list[str], mime: str | None, expected: str
) -> None:
    assert task_phase(status, operation, column, output_mime=mime, deliveries=deliveries) == expected


def test_the_specs_phase_names_win() -> None:
    names = {"resize": "processing_overlay_model", "edit": "processing_background_model"}
    assert task_phase("running", "resize", None, phase_names=names) == "processing_overlay_model"
    assert task_phase("waiting_provider", "edit", None, phase_names=names) == "processing_background_model"
    assert task_phase("running", "avatar", None, phase_names=names) == DEFAULT_PHASES["avatar"]
