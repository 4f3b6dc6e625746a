"""A job's input images as its provider receives them, without holding them in memory while the provider runs.

Each image (the booth's photo, a slot's template) is read from media storage and taken through the image boundary
(`images.boundary.prepare_input`: upright, sRGB, 8-bit, no personal metadata). Then it is handed over
- as the stored object itself (`StoredImage`) when the boundary changed nothing (its bytes are the stored ones), or
- as a spool file (`ImageFile`) holding the prepared bytes (metadata stripped, or re-encoded),
and the in-memory copies are dropped. A provider reads the bytes, or opens the file, only when it needs them.

The spool files of one attempt are listed in its `Spool` and removed when the attempt ends, whatever the outcome
(`Spool.remove`). Preparation itself holds the stored bytes and the prepared ones for a moment; at most
`budget_bytes` of images (by stored size) are prepared at once, so a burst of claimed jobs does not read all their
photos into memory together (one image larger than the budget is prepared alone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from boothbridge.images import boundary as image_boundary
from boothbridge.media.ref import MediaRef
from boothbridge.media.service import MediaExpired, MediaNotFound, MediaService
from boothbridge.providers.base import ImageFile, ImageSource, ProviderError, StoredImage

log = logging.getLogger(__name__)

# Stored bytes being prepared at once, all jobs of the process together: 2 camera photos of 8-10 MB (one per core
# of a small server; each also has its prepared copy and, when verified, a 1/8-scale decode for a moment), or some
# 100 photos of 225 kB (small photos are never held back by it).
PREPARING_BYTES = 24 * 1024 * 1024

_SUFFIX = {"image/jpeg": ".jpg", "image/png": ".png"}


class Spool:
    """The spool files made for one attempt's inputs. `remove` deletes them (idempotent, never raises)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder  # None: the OS temp folder
        self.paths: list[Path] = []

    def new_file(self, mime: str) -> Path:
        """A new empty file, listed before anything is written to it (so it is removed even if the attempt is
        cancelled while it is being written)."""
        fd, name = tempfile.mkstemp(prefix="boothbridge-input-", suffix=_SUFFIX.get(mime, ".bin"), dir=self.folder)
        os.close(fd)
        path = Path(name)
        self.paths.append(path)
        return path

    def remove(self) -> None:
        for path in self.paths:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:  # a file we cannot remove must not change the attempt's outcome
                log.warning("could not remove the spool file %s: %s", path, exc)
        self.paths.clear()


class _ByteBudget:
    """At most `limit` bytes taken at once; a request over the limit waits until nothing else is taken. Waiters
    re-check whenever bytes are given back (no lock: the check and the take happen without an await between)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0
        self._waiters: list[asyncio.Future[None]] = []

    @contextlib.asynccontextmanager
    async def take(self, size: int) -> AsyncIterator[None]:
        size = min(max(size, 1), self.limit)
        while self.taken + size > self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                self._waiters.remove(waiter)
        self.taken += size
        try:
            yield
        finally:
            self.taken -= size
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)


class InputPreparer:
    """Prepares the images of job attempts (shared by all of a worker's attempts).

    `max_image_pixels` is the boundary's pixel limit; `spool_folder` where spool files go (None: the OS temp
    folder); `budget_bytes` the stored bytes prepared at once (see the module docstring)."""

    def __init__(
        self,
        media: MediaService,
        max_image_pixels: int,
        *,
        spool_folder: Path | None = None,
        budget_bytes: int = PREPARING_BYTES,
    ) -> None:
        self.media = media
        self.max_image_pixels = max_image_pixels
        self.spool_folder = spool_folder
        self._budget = _ByteBudget(budget_bytes)

    def spool(self) -> Spool:
        """A new attempt's spool (remove it when the attempt ends)."""
        return Spool(self.spool_folder)

    async def prepare(
        self,
        ref: MediaRef,
        what: str,
        spool: Spool,
        *,
        verify: bool = False,
        as_stored: bool = False,
        gone: tuple[str, str],
    ) -> ImageSource:
        """The stored object `ref` as its provider receives it: a `StoredImage` or an `ImageFile` in `spool`.

        `what` names it in messages ("photo", "slot image template_media_id"); `verify` decodes it even when it
        crosses as it is, `as_stored` hands it over as stored to a provider that decodes and normalises it itself
        (see `image_boundary.prepare_input`, both); `gone` is the (code, message) of the final
        `ProviderError` raised when the object is no longer stored (now, or when a provider reads it later).
        Raises `ProviderError` `image_too_many_pixels` / `image_undecodable` (final) for the image itself; a spool
        file that cannot be written raises OSError (our fault: the caller fails the attempt retryably)."""
        async with self._budget.take(ref.size_bytes):
            data = await self._read(ref, gone)
            ready = await self._through_boundary(data, what, verify, as_stored)
            if not ready.changes and not as_stored:
                # The prepared bytes are the stored ones: hand the object over as it is (read again by a provider
                # that needs them; one that fetches it by a link never does).
                return StoredImage(ref.storage_key, ready.mime, ref.size_bytes, lambda: self._read(ref, gone))
            # A provider that decodes the image itself reads it all: from the spool file, not from storage again.
            del data  # the stored bytes; the prepared ones go to the spool file and are dropped with `ready`
            path = spool.new_file(ready.mime)
            await asyncio.to_thread(path.write_bytes, ready.data)
            return ImageFile(path, ready.mime, len(ready.data))

    async def _read(self, ref: MediaRef, gone: tuple[str, str]) -> bytes:
        try:
            return await self.media.read_described(ref)
        except (MediaNotFound, MediaExpired) as exc:
            raise ProviderError(gone[0], gone[1], retryable=False) from exc

    async def _through_boundary(
        self, data: bytes, what: str, verify: bool, as_stored: bool
    ) -> image_boundary.Normalised:
        try:
            return await asyncio.to_thread(
                image_boundary.prepare_input, data, self.max_image_pixels, verify=verify, as_stored=as_stored
            )
        except image_boundary.TooManyPixelsError as exc:
            raise ProviderError("image_too_many_pixels", f"the {what} has too many pixels", retryable=False) from exc
        except image_boundary.UndecodableImageError as exc:
            raise ProviderError("image_undecodable", f"the {what} cannot be decoded", retryable=False) from exc
        except Exception as exc:  # a decoder's surprise must end this job's attempt, not leave it running
            log.exception("the image boundary failed on the %s", what)
            raise ProviderError("image_undecodable", f"the {what} cannot be prepared", retryable=False) from exc
