"""DSLR-sized test photos made in code: every ingest gets its own, so de-duplication never short-circuits."""

from __future__ import annotations

import io
from concurrent.futures import Future, ThreadPoolExecutor

from PIL import Image, ImageFilter

PHOTO_SIZE = (1200, 800)


def base_photo(width: int = PHOTO_SIZE[0], height: int = PHOTO_SIZE[1]) -> Image.Image:
    """A photo-like RGB image: smooth gradients plus fine grain, so the JPEG is DSLR-sized (~230 kB)."""
    gradient = Image.linear_gradient("L").resize((width, height))
    grain = Image.effect_noise((width, height), 40).filter(ImageFilter.GaussianBlur(1))
    return Image.merge("RGB", (gradient, grain, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))


def distinct_photos(base: Image.Image, first: int, count: int, offset: int) -> list[bytes]:
    """`count` JPEGs that differ from each other (and from other runs, via `offset`) in one 2x2 patch."""
    width, height = base.size
    cells = (width // 2) * (height // 2)
    out = []
    for i in range(first, first + count):
        cell = (offset + i * 7919) % cells  # a prime stride spreads the patches over the 8x8 blocks
        x, y = (cell % (width // 2)) * 2, (cell // (width // 2)) * 2
        img = base.copy()
        r, g, b = img.getpixel((x, y))  # type: ignore[misc]
        img.paste((255 - r, 255 - g, 255 - b), (x, y, x + 2, y + 2))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


class PhotoBank:
    """Encodes the run's photos on two threads in the background; hands them out by name, once each.

    `sizes` maps a name to how many photos it needs; `offset` must differ between runs that share a database
    (e.g. a random number), so that no photo of this run de-duplicates against an earlier run's.
    """

    def __init__(self, sizes: dict[str, int], offset: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="photos")
        base = base_photo()
        self._futures: dict[str, list[Future[list[bytes]]]] = {}
        first = 0
        for name, count in sizes.items():
            self._futures[name] = [
                self._pool.submit(distinct_photos, base, start, min(100, first + count - start), offset)
                for start in range(first, first + count, 100)
            ]
            first += count

    def take(self, name: str) -> list[bytes]:
        photos = [p for fut in self._futures.pop(name) for p in fut.result()]
        if len(set(photos)) != len(photos):
            raise RuntimeError("photo generator produced duplicates")
        return photos

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
