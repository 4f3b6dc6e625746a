"""Media objects: bytes in an ObjectStore, one `media_objects` row each, refused once expired."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from boothbridge.db.engine import autocommit
from boothbridge.media.store import ObjectNotFound, ObjectStore

_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


class MediaNotFound(Exception):
    """No such media object (never stored, or deleted)."""


class MediaExpired(Exception):
    """The media object exists but its `expires_at` has passed: it must not be served or used."""


@dataclass(frozen=True)
class MediaRef:
    id: uuid.UUID
    storage_key: str
    mime: str
    size_bytes: int
    sha256: str
    kind: str
    expires_at: datetime | None


def storage_key_for(kind: str, media_id: uuid.UUID, mime: str, now: datetime) -> str:
    ext = _EXTENSIONS.get(mime, "bin")
    return f"{kind}/{now:%Y/%m/%d}/{media_id}.{ext}"


class MediaService:
    """Stores and reads media. Bytes go to the store first, the row second, so a row never names missing bytes."""

    def __init__(self, engine: AsyncEngine, store: ObjectStore) -> None:
        self.engine = engine
        self.db = autocommit(engine)  # every operation here is a single statement
        self.store = store

    async def write_bytes(self, kind: str, data: bytes, mime: str) -> MediaRef:
        """Put the bytes in the store and describe them; the caller inserts the row (often in its own tx)."""
        media_id = uuid.uuid4()
        key = storage_key_for(kind, media_id, mime, datetime.now(UTC))
        await self.store.put(key, data, mime)
        return MediaRef(
            id=media_id,
            storage_key=key,
            mime=mime,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            kind=kind,
            expires_at=None,
        )

    @staticmethod
    async def insert_row(
        conn: AsyncConnection, ref: MediaRef, expires_at: datetime | None, job_id: uuid.UUID | None = None
    ) -> None:
        await conn.execute(
            text(
                "INSERT INTO media_objects (id, storage_key, mime, size_bytes, sha256, kind, expires_at, job_id)"
                " VALUES (:id, :key, :mime, :size, :sha, :kind, :exp, :job)"
            ),
            {
                "id": ref.id,
                "key": ref.storage_key,
                "mime": ref.mime,
                "size": ref.size_bytes,
                "sha": ref.sha256,
                "kind": ref.kind,
                "exp": expires_at,
                "job": job_id,
            },
        )

    async def save(
        self,
        kind: str,
        data: bytes,
        mime: str,
        expires_at: datetime | None,
        job_id: uuid.UUID | None = None,
    ) -> MediaRef:
        ref = await self.write_bytes(kind, data, mime)
        try:
            async with self.db.connect() as conn:
                await self.insert_row(conn, ref, expires_at, job_id)
        except BaseException:
            await self.store.delete(ref.storage_key)
            raise
        return MediaRef(**{**ref.__dict__, "expires_at": expires_at})

    async def describe(self, media_id: uuid.UUID) -> MediaRef:
        """The row, refusing expired objects even before cleanup has removed them."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT id, storage_key, mime, size_bytes, sha256, kind, expires_at,"
                        " expires_at IS NOT NULL AND expires_at <= now() AS expired"
                        " FROM media_objects WHERE id = :id"
                    ),
                    {"id": media_id},
                )
            ).one_or_none()
        if row is None:
            raise MediaNotFound(str(media_id))
        if row.expired:
            raise MediaExpired(str(media_id))
        return MediaRef(
            id=row.id,
            storage_key=row.storage_key,
            mime=row.mime,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
            kind=row.kind,
            expires_at=row.expires_at,
        )

    async def read(self, media_id: uuid.UUID) -> tuple[bytes, MediaRef]:
        ref = await self.describe(media_id)
        try:
            data = await self.store.get(ref.storage_key)
        except ObjectNotFound as exc:
            raise MediaNotFound(str(media_id)) from exc
        return data, ref

    async def set_expiry(self, media_id: uuid.UUID, expires_at: datetime | None) -> None:
        async with self.db.connect() as conn:
            await conn.execute(
                text("UPDATE media_objects SET expires_at = :exp WHERE id = :id"),
                {"id": media_id, "exp": expires_at},
            )

    async def delete(self, media_id: uuid.UUID) -> None:
        """Remove bytes and row; idempotent."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    text("DELETE FROM media_objects WHERE id = :id RETURNING storage_key"), {"id": media_id}
                )
            ).one_or_none()
        if row is not None:
            await self.store.delete(row.storage_key)
