"""Media objects: bytes in an ObjectStore, one `media_objects` row each, refused once expired.

Ownership: an operator's uploads (`POST /api/media/register`) carry their `owner_id`. An operator finds by hash,
reuses on upload (de-duplication), extends and names in a slot only their own objects; identical bytes uploaded
by two operators are two objects. Objects the service makes itself (booth photos, results, the links providers
download) have no owner and are de-duplicated only among themselves. Uploads from before owners were recorded
(migration 0007) have no owner either: nobody finds, reuses or extends them, and an operator may go on naming one
in a slot only while one of their own slots already names it (so existing configurations can be saved again).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from boothbridge.db.engine import autocommit
from boothbridge.jobs.status import JobStatus, sql_list
from boothbridge.media.ref import MediaRef
from boothbridge.media.store import ObjectNotFound, ObjectStore
from boothbridge.media.upload import MediaUpload

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["MediaExpired", "MediaNotFound", "MediaRef", "MediaService", "MediaUpload"]

_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}

# Kinds whose bytes are stored once (seed 004): operator uploads, and the public links providers download.
# Sources and results are not: each belongs to its job and lives and dies with it.
DEDUPLICATED_KINDS = frozenset({"template", "public"})

FILE_CHUNK = 1024 * 1024  # bytes read from a local file at a time by `save_file`

_REF_COLUMNS = "id, storage_key, mime, size_bytes, sha256, kind, expires_at"
_LIVE = "(expires_at IS NULL OR expires_at > now())"

# Reusing a live object with the same bytes, in one statement: pick one, and (on the row, under its lock) check
# it is still live and push its expiry to the later of the two (NULL, "never", wins). Cleanup deletes only rows
# that are already expired, under the row lock, bytes first and row second; so a row this statement returns was
# live when it was locked and extended, cleanup can no longer take it, and its bytes are still there. If the
# picked row was deleted or expired meanwhile the statement returns nothing and the caller stores the bytes anew.
_REUSE = text(
    f"""
    UPDATE media_objects
    SET expires_at = CASE WHEN expires_at IS NULL OR CAST(:exp AS timestamptz) IS NULL THEN NULL
                          ELSE greatest(expires_at, CAST(:exp AS timestamptz)) END
    WHERE id = (
        SELECT id FROM media_objects
        WHERE sha256 = :sha AND kind = :kind AND mime = :mime AND owner_id IS NOT DISTINCT FROM :owner
          AND {_LIVE}
        ORDER BY expires_at DESC NULLS FIRST, created_at
        LIMIT 1
    ) AND {_LIVE}
    RETURNING {_REF_COLUMNS}
    """
)


# The purges' batches: the oldest first, locked so overlapping passes split the rows.
_EXPIRED = text(
    """
    SELECT id, storage_key FROM media_objects
    WHERE expires_at IS NOT NULL AND expires_at <= now()
    ORDER BY expires_at NULLS LAST LIMIT :batch FOR UPDATE SKIP LOCKED
    """
)
# Every result, except a pipeline step's output that an unfinished job is still to use as its next step's input
# (clearing it would fail that job: `input_expired`).
_RESULTS = text(
    f"""
    SELECT m.id, m.storage_key FROM media_objects m
    WHERE m.kind = 'result'
      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.input_media_id = m.id AND j.status IN {sql_list(JobStatus.ACTIVE)})
    ORDER BY m.expires_at NULLS LAST LIMIT :batch FOR UPDATE OF m SKIP LOCKED
    """
)
_DELETE_ROWS = text("DELETE FROM media_objects WHERE id = ANY(:ids)")
_LOCK_ONE = text("SELECT storage_key FROM media_objects WHERE id = :id FOR UPDATE")


class MediaNotFound(Exception):
    """No such media object (never stored, or deleted)."""


class MediaExpired(Exception):
    """The media object exists but its `expires_at` has passed: it must not be served or used."""


def storage_key_for(kind: str, media_id: uuid.UUID, mime: str, now: datetime) -> str:
    ext = _EXTENSIONS.get(mime, "bin")
    return f"{kind}/{now:%Y/%m/%d}/{media_id}.{ext}"


class MediaService:
    """Stores and reads media. Bytes go to the store first, the row second, so a row never names missing bytes."""

    def __init__(self, engine: AsyncEngine, store: ObjectStore) -> None:
        self.engine = engine
        self.db = autocommit(engine)  # every operation here is a single statement
        self.store = store

    async def write_bytes(self, kind: str, data: bytes, mime: str, *, sha256: str | None = None) -> MediaRef:
        """Put the bytes in the store and describe them; the caller inserts the row (often in its own tx).
        `sha256`: the bytes' digest when the caller has already computed it."""
        media_id = uuid.uuid4()
        key = storage_key_for(kind, media_id, mime, datetime.now(UTC))
        await self.store.put(key, data, mime)
        return MediaRef(
            id=media_id,
            storage_key=key,
            mime=mime,
            size_bytes=len(data),
            sha256=sha256 or hashlib.sha256(data).hexdigest(),
            kind=kind,
            expires_at=None,
        )

    def upload(self, kind: str, mime: str) -> MediaUpload:
        """A new object whose bytes are streamed to the store as they arrive (see `MediaUpload`); like
        `write_bytes`, the caller inserts the row once it is finished, and drops it if that fails."""
        media_id = uuid.uuid4()
        return MediaUpload(self.store, media_id, storage_key_for(kind, media_id, mime, datetime.now(UTC)), kind, mime)

    async def discard(self, media_id: uuid.UUID) -> None:
        """Delete an object now, whatever its expiry: its bytes, then its row (locked meanwhile, as a purge does).
        A missing object is not an error."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(_LOCK_ONE, {"id": media_id})).one_or_none()
            if row is None:
                return
            await self.store.delete(row.storage_key)
            await conn.execute(_DELETE_ROWS, {"ids": [media_id]})

    async def drop_bytes(self, ref: MediaRef) -> None:
        """Remove bytes put by `write_bytes` whose row was never inserted (the caller's transaction lost)."""
        await self.store.delete(ref.storage_key)

    @staticmethod
    async def insert_row(
        conn: AsyncConnection,
        ref: MediaRef,
        expires_at: datetime | None,
        job_id: uuid.UUID | None = None,
        owner_id: int | None = None,
    ) -> None:
        await conn.execute(
            text(
                "INSERT INTO media_objects (id, storage_key, mime, size_bytes, sha256, kind, expires_at, job_id,"
                " owner_id) VALUES (:id, :key, :mime, :size, :sha, :kind, :exp, :job, :owner)"
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
                "owner": owner_id,
            },
        )

    async def save(
        self,
        kind: str,
        data: bytes,
        mime: str,
        expires_at: datetime | None,
        job_id: uuid.UUID | None = None,
        *,
        owner_id: int | None = None,
    ) -> MediaRef:
        """Store the bytes as a new object, or, for the de-duplicated kinds, return a live object of that kind
        with the same bytes and the same owner (`owner_id`, None for the service's own objects), its expiry pushed
        to the later of the two.

        Two identical uploads at the same moment may both find nothing and both store: that leaves two whole
        objects (each row is inserted only after its bytes are stored), never a broken one, and later uploads
        reuse one of them. Only a single-statement reuse is needed for that, no lock held across the upload.
        """
        if kind in DEDUPLICATED_KINDS:
            reused = await self._reuse(kind, hashlib.sha256(data).hexdigest(), mime, expires_at, owner_id)
            if reused is not None:
                return reused
        ref = await self.write_bytes(kind, data, mime)
        try:
            async with self.db.connect() as conn:
                await self.insert_row(conn, ref, expires_at, job_id, owner_id)
        except BaseException:
            await self.store.delete(ref.storage_key)
            raise
        return MediaRef(**{**ref.__dict__, "expires_at": expires_at})

    async def save_file(
        self, kind: str, path: Path, mime: str, expires_at: datetime | None, job_id: uuid.UUID | None = None
    ) -> MediaRef:
        """`save` (for the service's own objects) of the bytes in the local file at `path`, streamed to the store
        in FILE_CHUNK reads, never whole in memory. A de-duplicated kind is looked up by the digest computed on the
        way: when a live object has these bytes, what was just stored is removed and that one returned (extended).
        Raises OSError when the file cannot be read (nothing is left stored)."""
        upload = self.upload(kind, mime)
        try:
            with path.open("rb") as file:
                while chunk := await asyncio.to_thread(file.read, FILE_CHUNK):
                    await upload.write(chunk)
            ref = await upload.finish()
            reused = await self._reuse(kind, ref.sha256, mime, expires_at, None) if kind in DEDUPLICATED_KINDS else None
            if reused is not None:
                await upload.drop()
                return reused
            async with self.db.connect() as conn:
                await self.insert_row(conn, ref, expires_at, job_id)
        except BaseException:
            await upload.drop()
            raise
        return MediaRef(**{**ref.__dict__, "expires_at": expires_at})

    async def _reuse(
        self, kind: str, sha256: str, mime: str, expires_at: datetime | None, owner_id: int | None
    ) -> MediaRef | None:
        params = {"sha": sha256, "kind": kind, "mime": mime, "exp": expires_at, "owner": owner_id}
        async with self.db.connect() as conn:
            row = (await conn.execute(_REUSE, params)).one_or_none()
        return _ref(row) if row is not None else None

    async def find_live(
        self, sha256: str, owner_id: int, kinds: tuple[str, ...] = tuple(sorted(DEDUPLICATED_KINDS))
    ) -> MediaRef | None:
        """A live (unexpired) object of `owner_id`'s, of one of `kinds`, with these bytes: one that never expires
        first, else the one that lives longest."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        f"SELECT {_REF_COLUMNS} FROM media_objects"
                        f" WHERE sha256 = :sha AND kind = ANY(:kinds) AND owner_id = :owner AND {_LIVE}"
                        " ORDER BY expires_at DESC NULLS FIRST, created_at LIMIT 1"
                    ),
                    {"sha": sha256, "kinds": list(kinds), "owner": owner_id},
                )
            ).one_or_none()
        return _ref(row) if row is not None else None

    async def describe(self, media_id: uuid.UUID, *, owner_id: int | None = None) -> MediaRef:
        """The row, refusing expired objects even before cleanup has removed them. With `owner_id`, only that
        operator's object: another's is MediaNotFound, exactly like a missing one."""
        owned = " AND owner_id = :owner" if owner_id is not None else ""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT id, storage_key, mime, size_bytes, sha256, kind, expires_at,"
                        " expires_at IS NOT NULL AND expires_at <= now() AS expired"
                        f" FROM media_objects WHERE id = :id{owned}"
                    ),
                    {"id": media_id, "owner": owner_id},
                )
            ).one_or_none()
        if row is None:
            raise MediaNotFound(str(media_id))
        if row.expired:
            raise MediaExpired(str(media_id))
        return _ref(row)

    async def read(self, media_id: uuid.UUID) -> tuple[bytes, MediaRef]:
        ref = await self.describe(media_id)
        return await self.read_described(ref), ref

    async def read_via(
        self, media_id: uuid.UUID, row: MediaRef | None, *, row_was_read: bool
    ) -> tuple[bytes, MediaRef]:
        """The bytes of `media_id` and its row: through `row` when a query already read the live row along with
        something else (`row_was_read`; None then means gone or expired), else by reading the row now. Raises
        `MediaNotFound` / `MediaExpired`."""
        if not row_was_read:
            return await self.read(media_id)
        if row is None:
            raise MediaNotFound(str(media_id))
        return await self.read_described(row), row

    async def read_described(self, ref: MediaRef) -> bytes:
        """The bytes of an object whose live row the caller has already read (joined into its own statement)."""
        try:
            return await self.store.get(ref.storage_key)
        except ObjectNotFound as exc:
            raise MediaNotFound(str(ref.id)) from exc

    async def extend(self, media_id: uuid.UUID, expires_at: datetime, *, owner_id: int) -> MediaRef | None:
        """Push a live temporary object of `owner_id`'s to `expires_at`, never earlier than it was (a
        de-duplicated object may be shared by several links). None when it is gone, expired, not temporary or not
        theirs. One statement, checked on the locked row, so an object cleanup is already removing is never
        brought back."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "UPDATE media_objects SET expires_at = greatest(expires_at, :exp)"
                        " WHERE id = :id AND owner_id = :owner AND expires_at IS NOT NULL AND expires_at > now()"
                        f" RETURNING {_REF_COLUMNS}"
                    ),
                    {"id": media_id, "exp": expires_at, "owner": owner_id},
                )
            ).one_or_none()
        return _ref(row) if row is not None else None

    async def purge_expired(self, batch: int = 200) -> int:
        """Delete expired media objects (bytes, then rows) in batches of `batch`; returns how many were removed.
        Rows are locked with SKIP LOCKED, so two overlapping cleanup passes split the work instead of deleting
        twice."""
        return await self._purge(_EXPIRED, batch)

    async def clear_results(self, batch: int = 200) -> int:
        """The settings page's "clear media cache": delete every kept result now (a re-post is processed again);
        returns how many were removed."""
        return await self._purge(_RESULTS, batch)

    async def _purge(self, statement: Any, batch: int) -> int:
        removed = 0
        while True:
            async with self.engine.begin() as conn:
                rows = (await conn.execute(statement, {"batch": batch})).all()
                if not rows:
                    return removed
                for row in rows:
                    await self.store.delete(row.storage_key)
                await conn.execute(_DELETE_ROWS, {"ids": [row.id for row in rows]})
            removed += len(rows)
            if len(rows) < batch:
                return removed


def _ref(row: Any) -> MediaRef:
    return MediaRef(**{name: row._mapping[name] for name in MediaRef.__dataclass_fields__})
