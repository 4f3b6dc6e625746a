"""Which provider answers are videos (`jobs.result_image.video_mime`: kept as they are, past the image boundary) and
which jobs are tasks (`tasks.outputs.is_task`)."""

from __future__ import annotations

import pytest

from boothbridge.jobs.result_image import video_mime
from boothbridge.tasks.outputs import is_task
from tests.support.booth import jpeg


def ftyp(brand: bytes) -> bytes:
    return b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00\x02\x00" + brand + b"mp41" + bytes(16)


@pytest.mark.parametrize(
    ("brand", "mime"), [(b"isom", "video/mp4"), (b"mp42", "video/mp4"), (b"qt  ", "video/quicktime")]
)
def test_iso_bmff_videos(brand: bytes, mime: str) -> None:
    assert video_mime(ftyp(brand)) == mime


@pytest.mark.parametrize(
    "data", [ftyp(b"heic"), ftyp(b"mif1"), ftyp(b"avif"), jpeg(8, 8), b"\x00\x00\x00\x18ftyp", b""]
)
def test_stills_and_others_are_not_videos(data: bytes) -> None:
    assert video_mime(data) is None


def test_only_a_task_pipeline_is_a_task() -> None:
    assert is_task({"steps": [], "task": True})
    assert not is_task({"steps": []}) and not is_task({}) and not is_task({"task": "yes"})
