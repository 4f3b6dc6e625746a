"""The booth's photo on its way to storage while its form is read, and the cheap checks made on the way.

`PhotoUpload` is the multipart reader's `PhotoSink`: each piece of the photo part goes to the object store as it
arrives (`MediaService.upload`: its SHA-256 and size computed on the way); nothing holds the photo, only its first
HEADER_BYTES (for the header) and last TAIL_BYTES (is it whole?). Refusals come as soon as they are known: the
ingest password when the booth sent it before the photo (401, nothing stored), the type from the first bytes (415,
nothing stored), the size (413, writing stops). Once the form is read and the password checked, `stored` finishes
the object and checks what is cheap (see `boothbridge.images.upload`). Whatever was stored is removed by `drop`
unless the photo was handed to a job (`handed_over`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from boothbridge.errors import AppError
from boothbridge.images.upload import (
    CHEAP_TYPES,
    HEADER_BYTES,
    SNIFF_BYTES,
    TAIL_BYTES,
    ImageInfo,
    accepted_type,
    header_info,
    inspect_image,
    looks_whole,
)
from boothbridge.ingest.admission import require_photo
from boothbridge.ingest.model import UploadedForm, too_large
from boothbridge.media.ref import MediaRef
from boothbridge.media.service import MediaService, MediaUpload

log = logging.getLogger(__name__)

# An in-memory photo (an operator's test run) is fed to the store in pieces of this size.
FEED_BYTES = 1024 * 1024


@dataclass(frozen=True)
class StoredPhoto:
    """The photo as stored (its media row still to be inserted with the job) and what its header says."""

    ref: MediaRef
    info: ImageInfo


class PhotoUpload:
    """One booth photo streamed to storage (see the module docstring).

    `allowed_mime`: the slot's provider's accepted types, or None when the slot cannot run (the bytes are then
    counted, never stored: the answer is 409 once the password is checked). `max_bytes`: the photo's cap (413
    above it). `check_password`: raises 401 for the form's fields when they hold a wrong password (None: no
    password is needed, an operator's test run)."""

    def __init__(
        self,
        media: MediaService,
        *,
        allowed_mime: tuple[str, ...] | None,
        max_bytes: int,
        max_pixels: int,
        check_password: Callable[[Mapping[str, str]], None] | None,
    ) -> None:
        self._media = media
        self._allowed = allowed_mime
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._check_password = check_password
        self._head = bytearray()
        self._tail = b""
        self._upload: MediaUpload | None = None
        self._kept = False
        self.seen = False  # a photo part began
        self.size = 0
        self.fields_before: dict[str, str] | None = None  # the text fields sent before the photo
        self.password_verified = False  # the ingest password among them was right

    # ---- the reader's sink ----------------------------------------------------------------------------

    async def begin(self, fields: Mapping[str, str]) -> None:
        """The photo part begins; `fields`: the text fields read before it. A password among them is checked now,
        so a wrong one stores nothing."""
        self.seen = True
        self.fields_before = dict(fields)
        if self._check_password is not None and "password" in fields:
            self._check_password(fields)
            self.password_verified = True

    def form_so_far(self, err: AppError) -> UploadedForm | None:
        """What the request log may record of a form whose reading `err` ended after the photo began: the fields
        read before it, when the password among them was checked (right, or `err` is the 401 for a wrong one, which
        the log records as fixed-size facts only); None otherwise (nothing is recorded of an unverified sender's
        fields, see `ingest.model.log_fields`)."""
        if self.fields_before is None or not (self.password_verified or err.code == "invalid_password"):
            return None
        return UploadedForm(
            file=None,
            filename=None,
            declared_type=None,
            fields=self.fields_before,
            password_verified=self.password_verified,
        )

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """The photo's next bytes: counted (413 over the cap), sniffed once SNIFF_BYTES are in (415), stored."""
        before = self.size
        self.size += len(data)
        if self.size > self._max_bytes:
            raise too_large(self._max_bytes)
        if len(self._head) < HEADER_BYTES:
            self._head += memoryview(data)[: HEADER_BYTES - len(self._head)]
        self._tail = (self._tail + bytes(memoryview(data)[-TAIL_BYTES:]))[-TAIL_BYTES:]
        if self._allowed is None:
            return
        if self._upload is None:
            if len(self._head) < SNIFF_BYTES:
                return  # the first bytes wait in `_head` until the type can be told
            await self._start(before)
        assert self._upload is not None
        await self._upload.write(data)

    async def feed(self, photo: bytes) -> None:
        """An in-memory photo (an operator's test run) through the same path."""
        await self.begin({})
        view = memoryview(photo)
        for start in range(0, len(photo), FEED_BYTES):
            await self.write(view[start : start + FEED_BYTES])

    async def _start(self, before: int) -> None:
        """Sniff the type and start storing: first the `before` bytes that came ahead of the current piece (fewer
        than SNIFF_BYTES, all in `_head`)."""
        assert self._allowed is not None
        mime = accepted_type(bytes(self._head[:SNIFF_BYTES]), self._allowed)
        self._upload = self._media.upload("source", mime)
        if before:
            await self._upload.write(bytes(self._head[:before]))

    # ---- after the form -------------------------------------------------------------------------------

    async def stored(self) -> StoredPhoto:
        """Finish storing the photo and check it: 400 `file_missing` / `file_empty`, 415, 422
        `image_too_many_pixels` / `image_undecodable` (see `boothbridge.images.upload`). The caller drops the
        upload when this raises."""
        require_photo(self.size if self.seen else None, self._max_bytes)
        if self._upload is None:  # a photo shorter than SNIFF_BYTES
            await self._start(self.size)
        assert self._upload is not None
        ref = await self._upload.finish()
        info = await self._checked(ref.mime)
        self._head = bytearray()  # the header has been read: nothing of the photo stays in memory
        return StoredPhoto(ref, info)

    async def _checked(self, mime: str) -> ImageInfo:
        assert self._upload is not None and self._allowed is not None
        if mime in CHEAP_TYPES and looks_whole(mime, self._tail):
            info = header_info(bytes(self._head), mime, self._max_pixels, whole=self.size <= len(self._head))
            if info is not None:
                return info
        # Rare: a type or an ending the cheap checks cannot vouch for, or a header past HEADER_BYTES. The whole
        # file is read back from storage and decoded, as every photo once was.
        data = await self._upload.read()
        return await asyncio.to_thread(inspect_image, data, self._allowed, self._max_pixels)

    def handed_over(self) -> None:
        """The stored photo now belongs to a job (its row was inserted with it): `drop` leaves it."""
        self._kept = True

    async def drop(self) -> None:
        """Remove whatever was stored (a temp file, an incomplete upload, the object), unless handed over. Never
        raises: the booth's answer is decided already; a store that fails here is logged (what it kept has no row,
        and an incomplete S3 upload goes with the bucket's lifecycle rule)."""
        self._head = bytearray()
        if self._upload is not None and not self._kept:
            try:
                await self._upload.drop()
            except Exception as exc:
                log.warning("the refused photo %s could not be removed (%s)", self._upload.key, type(exc).__name__)
