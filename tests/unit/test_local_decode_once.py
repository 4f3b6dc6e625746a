"""The `local` provider decodes a photo once at the size the operation needs and encodes once: the JPEG draft
(Pillow) and shrink-on-load (libvips) choices, that both give what a full decode and LANCZOS give, and the
`EncodedHere` mark that lets the worker skip a second decode of our own result (and only of our own)."""

from __future__ import annotations

import io
import random
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat

from boothbridge.images import boundary, codec
from boothbridge.jobs import runner as runner_module
from boothbridge.providers.base import ImageInput, ProviderRequest, ProviderResult
from boothbridge.providers.local import fast as local_fast
from boothbridge.providers.local.adapter import LocalProvider
from tests.support.images import camera_jpeg, encoded

LIMIT = 100_000_000


def textured(width: int, height: int) -> Image.Image:
    """A grey gradient with photo-like grain (seeded: every run sees the same image), as RGB: a resampler's mistakes
    show on it, unlike on flat colour, and JPEG's chroma subsampling loses nothing of it."""
    base = Image.linear_gradient("L").resize((width, height))
    noise = random.Random(13).randbytes((width // 12) * (height // 12))
    grain = Image.frombytes("L", (width // 12, height // 12), noise).resize((width, height), Image.Resampling.BICUBIC)
    return Image.blend(base, grain, 0.5).convert("RGB")


BEST = {"output": {"format": "jpeg", "quality": 100}}  # encoding adds next to nothing to the resampler's error


def lanczos_error(got: bytes, source: bytes, size: tuple[int, int]) -> float:
    """Mean difference (levels) of `got` from a full decode of `source` + LANCZOS to `size`."""
    return mean_difference(decoded(got), decoded(source).resize(size, Image.Resampling.LANCZOS))


def draft_at_target_error(source: bytes, size: tuple[int, int]) -> float:
    """The same for the shortcut the 2x rule forbids: a JPEG draft down to the target itself, then LANCZOS."""
    img = Image.open(io.BytesIO(source))
    img.draft("RGB", size)
    return lanczos_error(encoded(img.resize(size, Image.Resampling.LANCZOS), "JPEG", quality=100), source, size)


def request(operation: str, settings: dict[str, Any], data: bytes) -> ProviderRequest:
    return ProviderRequest("job-1", 1, operation, settings, ImageInput(data, "image/jpeg"))


def decoded(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img.convert("RGB")


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


@pytest.fixture
def pillow_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider without libvips (as where pyvips cannot load)."""
    monkeypatch.setattr(local_fast, "_vips", lambda: None)


@pytest.mark.parametrize(
    ("size", "target", "scale"),
    [
        ((6000, 4000), (1800, 1200), 1),  # 3.3x: halving would leave less than twice the target
        ((6000, 4000), (1500, 1000), 2),
        ((6000, 4000), (1000, 667), 2),
        ((6000, 4000), (500, 333), 4),
        ((6000, 4000), (300, 200), 8),
        ((6000, 4000), (6000, 4000), 1),
        ((6000, 4000), (100, 4000), 1),  # a stretch: the larger side decides
    ],
)
def test_the_load_scale_leaves_twice_the_target(size: tuple[int, int], target: tuple[int, int], scale: int) -> None:
    assert local_fast.load_scale(size, target) == scale


def test_decode_with_a_minimum_size_is_the_draft_size() -> None:
    data = encoded(textured(1600, 1200), "JPEG", quality=92)
    assert codec.decode(data, (800, 600)).size == (800, 600)
    assert codec.decode(data, (400, 300)).size == (400, 300)
    assert codec.decode(data, (801, 600)).size == (1600, 1200)  # never smaller than asked
    assert codec.decode(encoded(textured(160, 120), "PNG"), (40, 30)).size == (160, 120)  # only JPEG drafts


def test_a_sideways_photo_is_drafted_in_its_upright_size_and_comes_out_upright() -> None:
    data = camera_jpeg(1600, 800, orientation=6)  # stored 1600 x 800, upright 800 x 1600
    assert codec.upright_size(data) == (800, 1600)
    img = codec.decode(data, (200, 400))
    assert img.size == (200, 400)
    # Orientation 6 turns the stored left (red) half to the top.
    assert img.getpixel((100, 50))[0] > 150 and img.getpixel((100, 350))[1] > 150  # type: ignore[index]


def test_a_camera_jpeg_with_further_images_is_drafted_too() -> None:
    """A JPEG with an MPF index of further images (a camera's preview, a phone's gain map) opens in Pillow as MPO:
    still a JPEG, decoded at the reduced size (found in review: it was decoded whole)."""
    out = io.BytesIO()
    textured(1600, 1200).save(out, "MPO", save_all=True, append_images=[textured(320, 240)], quality=90)
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert codec.decode(data, (400, 300)).size == (400, 300)


def test_a_cmyk_jpeg_is_drafted_and_converted() -> None:
    data = encoded(Image.new("CMYK", (800, 400), (0, 255, 255, 0)), "JPEG", quality=95)
    img = codec.decode(data, (200, 100))
    assert (img.mode, img.size) == ("RGB", (200, 100))
    assert local_fast._jpeg_geometry(data) is None  # not for libvips: Pillow converts it


@pytest.mark.usefixtures("pillow_only")
async def test_pillow_resize_from_the_draft_equals_full_decode_and_lanczos() -> None:
    data = encoded(textured(2400, 1600), "JPEG", quality=95)
    result = await LocalProvider().run(request("resize", {"width": 500, **BEST}, data))  # drafted to 1/2: 1200 x 800
    assert lanczos_error(result.image.data, data, (500, 333)) < 0.5 < draft_at_target_error(data, (500, 333))


@pytest.mark.usefixtures("pillow_only")
async def test_pillow_resize_of_a_sideways_photo_is_upright() -> None:
    result = await LocalProvider().run(request("resize", {"width": 100}, camera_jpeg(1600, 800, orientation=6)))
    out = decoded(result.image.data)
    assert out.size == (100, 200)
    assert out.getpixel((50, 20))[0] > 150 and out.getpixel((50, 180))[1] > 150  # type: ignore[index]


async def test_libvips_resize_equals_full_decode_and_lanczos(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encoded(textured(2400, 1600), "JPEG", quality=95)
    engines: list[str] = []
    real = local_fast._execute
    monkeypatch.setattr(local_fast, "_execute", lambda *a: engines.append("vips") or real(*a))
    for width, height in ((1800, 1200), (500, 333)):  # no shrink-on-load, then 1/2
        result = await LocalProvider().run(request("resize", {"width": width, **BEST}, data))
        assert lanczos_error(result.image.data, data, (width, height)) < 0.5
    assert engines == ["vips", "vips"]


async def test_libvips_crop_gives_pillow_s_pixels(pillow_only: None, monkeypatch: pytest.MonkeyPatch) -> None:
    data = encoded(textured(1200, 800), "JPEG", quality=95)
    settings = {"aspect_ratio": "1:1", "mode": "crop"}
    by_pillow = await LocalProvider().run(request("reframe", settings, data))
    monkeypatch.undo()
    by_vips = await LocalProvider().run(request("reframe", settings, data))
    assert isinstance(by_vips.image, codec.EncodedHere)
    a, b = decoded(by_pillow.image.data), decoded(by_vips.image.data)
    assert a.size == b.size == (800, 800)
    assert mean_difference(a, b) < 0.05


async def test_a_damaged_jpeg_gets_what_pillow_alone_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """libvips stops at libjpeg's first warning and hands the photo to Pillow, which decides as it always has."""
    data = encoded(textured(1200, 800), "JPEG", quality=95)
    cut = data[: len(data) // 2]
    with_vips = await LocalProvider().run(request("resize", {"width": 300}, cut))
    monkeypatch.setattr(local_fast, "_vips", lambda: None)
    assert with_vips.image.data == (await LocalProvider().run(request("resize", {"width": 300}, cut))).image.data


@pytest.mark.parametrize(("mode", "fmt"), [("RGB", "jpeg"), ("RGB", "png"), ("RGBA", "png"), ("RGBA", "jpeg")])
def test_what_we_encode_the_boundary_passes_byte_for_byte(mode: str, fmt: str) -> None:
    image = codec.encode_result(textured(64, 48).convert(mode), fmt, 92)
    assert isinstance(image, codec.EncodedHere)
    assert codec.accepted_as_is(image, fmt, LIMIT)
    assert boundary.accept_result(image.data, fmt, 92, LIMIT).data == image.data


async def test_libvips_output_passes_the_boundary_byte_for_byte() -> None:
    data = encoded(textured(1200, 800), "JPEG", quality=95)
    for operation, settings in (("resize", {"width": 300}), ("reframe", {"aspect_ratio": "1:1"})):
        image = (await LocalProvider().run(request(operation, settings, data))).image
        assert isinstance(image, codec.EncodedHere)
        assert boundary.accept_result(image.data, None, 92, LIMIT).data == image.data


def test_only_the_codec_marks_bytes_and_only_what_it_may_skip() -> None:
    with pytest.raises(TypeError):
        codec.EncodedHere(b"\xff\xd8", "image/jpeg", 1, 1)
    plain = ImageInput(encoded(textured(8, 8), "JPEG"), "image/jpeg")
    assert not codec.accepted_as_is(plain, None, LIMIT)  # a provider's bytes: always the boundary
    ours = codec.encode_result(textured(100, 100), "jpeg", 92)
    assert codec.accepted_as_is(ours, None, LIMIT) and codec.accepted_as_is(ours, "jpeg", LIMIT)
    assert not codec.accepted_as_is(ours, "png", LIMIT)  # to be converted
    assert not codec.accepted_as_is(ours, "jpeg", 9_999)  # over the limit: the boundary refuses it
    with_comment = textured(8, 8)
    with_comment.info["comment"] = b"owner: J. Doe"
    assert not isinstance(codec.encode_result(with_comment, "jpeg", 92), codec.EncodedHere)


async def test_the_worker_skips_the_boundary_only_for_our_own_result(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = boundary.accept_result

    def spy(data: bytes, *args: Any) -> boundary.Normalised:
        calls.append(data)
        return real(data, *args)

    monkeypatch.setattr(boundary, "accept_result", spy)
    ours = codec.encode_result(textured(100, 100), "jpeg", 92)
    accepted = await runner_module.accepted_result(ProviderResult(ours, 0.0), {}, LIMIT)
    assert accepted.image.data == ours.data and calls == []
    theirs = ProviderResult(ImageInput(ours.data, "image/jpeg"), 0.0)
    await runner_module.accepted_result(theirs, {}, LIMIT)
    assert calls == [ours.data]
    with pytest.raises(Exception) as info:
        await runner_module.accepted_result(ProviderResult(ours, 0.0), {}, 9_999)
    assert getattr(info.value, "code", None) == "result_too_large"
