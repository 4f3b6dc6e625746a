"""A new media object whose bytes arrive piece by piece (the booth's photo while its form is read): streamed to the
object store as they come, their size and SHA-256 computed on the way, never collected in memory."""

from __future__ import annotations

import hashlib
import uuid

from boothbridge.media.ref import MediaRef
from boothbridge.media.store import ObjectStore


class MediaUpload:
    """One object being stored (`MediaService.upload`): `write` the bytes in order, then `finish` (the object is
    stored, its `MediaRef` returned; the caller inserts the row), or `drop` (whatever was stored goes, before or
    after `finish`). Holds no more than the store's writer does (FolderStore: 1 MiB; S3Store: one 5 MiB part)."""

    def __init__(self, store: ObjectStore, media_id: uuid.UUID, key: str, kind: str, mime: str) -> None:
        self.id = media_id
        self.key = key
        self.kind = kind
        self.mime = mime
        self.size = 0
        self._store = store
        self._writer = store.writer(key, mime)
        self._sha = hashlib.sha256()
        self._ref: MediaRef | None = None

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._sha.update(data)
        self.size += len(data)
        await self._writer.write(data)

    async def finish(self) -> MediaRef:
        """Store the object (a FolderStore fsyncs and renames, S3 completes the upload) and describe it."""
        if self._ref is None:
            await self._writer.commit()
            self._ref = MediaRef(
                id=self.id,
                storage_key=self.key,
                mime=self.mime,
                size_bytes=self.size,
                sha256=self._sha.hexdigest(),
                kind=self.kind,
                expires_at=None,
            )
        return self._ref

    async def read(self) -> bytes:
        """The stored bytes, read back whole (after `finish`): for the rare checks that need all of them."""
        if self._ref is None:
            raise RuntimeError("the upload is not finished")
        return await self._store.get(self.key)

    async def drop(self) -> None:
        """Remove whatever this upload stored (nothing is left: no temp file, no incomplete upload, no object)."""
        await self._writer.abort()
