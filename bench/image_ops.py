"""Image operations on a camera-sized photo: the product's worker path against the image libraries alone.

    python -m bench.image_ops            # or: make bench

Generates a 24 MP (6000 x 4000) camera-like JPEG of about 7 MB (quality 95, with an EXIF block as cameras write
it) and times, for resize to 1800 px wide and for a 1:1 centre crop, each with JPEG output at the slot's default
quality (92):

- **product**: the real worker path in this process, the way `JobRunner` runs a `local` slot: the image boundary's
  `prepare_input` (what `jobs.inputs` calls for each input), `LocalProvider.run`, then `jobs.runner.accepted_result`
  (the boundary's `accept_result`). No HTTP, no database, no media storage: those are not image work.
- **Pillow (draft)**: Pillow alone, the fastest way it knows for the same output: open, `draft` to at least twice
  the target when resizing (libjpeg's DCT scaling; for 6000 -> 1800 px that is the full size), LANCZOS to the
  exact size or crop, encode once.
- **pyvips**: libvips alone (`thumbnail_buffer` with shrink-on-load for resize; sequential decode, crop, encode
  for the crop); "not installed" when pyvips does not import.

Each figure is the median of RUNS runs in this one process; the ratio is the product's time over the best
reference. Prints a table; exits 1 if an output has the wrong size.
"""

from __future__ import annotations

import asyncio
import functools
import io
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from PIL import Image, ImageFilter

from boothbridge.images import boundary
from boothbridge.jobs.result_image import accepted_result
from boothbridge.providers.base import ImageInput, ProviderRequest
from boothbridge.providers.local.adapter import DEFAULT_QUALITY, LocalProvider

WIDTH, HEIGHT = 6000, 4000
RUNS = 7
MAX_PIXELS = 160_000_000
RESIZE_WIDTH = 1800

# operation name -> (catalog operation id, slot settings, expected output size)
CASES: dict[str, tuple[str, dict[str, Any], tuple[int, int]]] = {
    f"resize to {RESIZE_WIDTH} px wide": ("resize", {"width": RESIZE_WIDTH}, (1800, 1200)),
    "1:1 crop": ("reframe", {"aspect_ratio": "1:1", "mode": "crop"}, (4000, 4000)),
}


def camera_jpeg() -> bytes:
    """A 6000 x 4000 JPEG of about 7 MB: smooth gradients with fine grain (pure noise would not compress, a plain
    gradient would compress far below a camera's size), with an EXIF block saying it is upright."""
    base = Image.linear_gradient("L").resize((WIDTH, HEIGHT)).convert("RGB")
    grain = Image.effect_noise((WIDTH // 6, HEIGHT // 6), 40).resize((WIDTH, HEIGHT)).filter(ImageFilter.SHARPEN)
    img = Image.merge("RGB", (base.getchannel(0), grain, base.getchannel(2)))
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x010F] = "Canon"
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=93, exif=exif.tobytes())
    return buf.getvalue()


def product(loop: asyncio.AbstractEventLoop, data: bytes, operation: str, settings: dict[str, Any]) -> bytes:
    """The worker's image path for one `local` job: boundary in, provider, boundary out."""
    provider = LocalProvider()

    async def attempt() -> bytes:
        ready = await asyncio.to_thread(boundary.prepare_input, data, MAX_PIXELS)
        request = ProviderRequest(
            job_id="bench",
            attempt=1,
            operation_id=operation,
            settings=settings,
            source=ImageInput(ready.data, ready.mime),
        )
        result = await provider.run(request)
        return (await accepted_result(result, settings, MAX_PIXELS)).image.data

    return loop.run_until_complete(attempt())


def pillow_reference(data: bytes, operation: str, settings: dict[str, Any]) -> bytes:
    """Pillow alone: decode once (at the smallest DCT scale at least twice the target), operate, encode once."""
    with Image.open(io.BytesIO(data)) as img:
        if operation == "resize":
            size = (RESIZE_WIDTH, round(img.height * RESIZE_WIDTH / img.width))
            # At least twice the target, the product's rule (a draft down to the target itself is faster but
            # visibly worse: 2-4x the error against a full-size LANCZOS, see tests/unit/test_local_decode_once.py).
            img.draft("RGB", (size[0] * 2, size[1] * 2))
            out = img.resize(size, Image.Resampling.LANCZOS)
        else:
            side = min(img.size)
            left, top = (img.width - side) // 2, (img.height - side) // 2
            out = img.crop((left, top, left + side, top + side))
        buf = io.BytesIO()
        out.save(buf, "JPEG", quality=DEFAULT_QUALITY)
    return buf.getvalue()


def vips_reference() -> Callable[[bytes, str, dict[str, Any]], bytes] | None:
    """libvips alone, or None when pyvips does not import."""
    try:
        import pyvips  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except (ImportError, OSError):
        return None

    def run(data: bytes, operation: str, settings: dict[str, Any]) -> bytes:
        if operation == "resize":
            out = pyvips.Image.thumbnail_buffer(data, RESIZE_WIDTH, height=10_000_000)  # shrink-on-load, LANCZOS-3
        else:
            img = pyvips.Image.new_from_buffer(data, "", access="sequential")
            side = min(img.width, img.height)
            out = img.crop((img.width - side) // 2, (img.height - side) // 2, side, side)
        return bytes(out.jpegsave_buffer(Q=DEFAULT_QUALITY, keep="none", subsample_mode="on"))  # Pillow's 4:2:0

    return run


def median_ms(run: Callable[[], bytes], expected: tuple[int, int]) -> tuple[float, bool]:
    """Median wall time of RUNS calls (after one warm-up), and whether the output had the expected size."""
    ok = Image.open(io.BytesIO(run())).size == expected
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), ok


def main() -> int:
    data = camera_jpeg()
    vips = vips_reference()
    loop = asyncio.new_event_loop()
    ok = True
    print(
        f"\nImage operations on one {WIDTH} x {HEIGHT} ({WIDTH * HEIGHT / 1e6:.0f} MP, {len(data) / 1e6:.1f} MB) JPEG"
    )
    print(f"JPEG output at quality {DEFAULT_QUALITY}; median of {RUNS} runs, ms; product = the worker path in-process")
    print("(image boundary in, local provider, image boundary out)\n")
    print(f"{'operation':<24}{'product':>9}{'Pillow (draft)':>16}{'pyvips':>15}{'ratio':>8}")
    try:
        for name, (operation, settings, expected) in CASES.items():
            ms, good = median_ms(functools.partial(product, loop, data, operation, settings), expected)
            pil, pil_good = median_ms(functools.partial(pillow_reference, data, operation, settings), expected)
            best = pil
            vips_cell = "not installed"
            if vips is not None:
                vms, vips_good = median_ms(functools.partial(vips, data, operation, settings), expected)
                vips_cell, best = f"{vms:.0f}", min(pil, vms)
                ok = ok and vips_good
            ok = ok and good and pil_good
            print(f"{name:<24}{ms:>9.0f}{pil:>16.0f}{vips_cell:>15}{ms / best:>7.2f}x")
    finally:
        loop.close()
    print("\nratio = product / the best reference; target <= 1.3x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
