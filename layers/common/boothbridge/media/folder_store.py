"""FolderStore: an ObjectStore over a local directory (local mode and single-host setups)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from pathlib import Path

from boothbridge.media.store import ObjectNotFound

# mkstemp creates files 0600; objects should be readable like any other file the service writes
# (backups, a web server serving the media folder).
_FILE_MODE = 0o644
_TMP_PREFIX = ".tmp-"
# A streamed object's bytes are written to its temp file this many at a time (one thread hop each), so a writer holds
# at most this much besides the caller's chunk.
WRITE_BATCH_BYTES = 1024 * 1024


def validate_key(key: str) -> list[str]:
    """Return the key's path segments, or raise ValueError if the key could escape a store's root."""
    if not key:
        raise ValueError("object key is empty")
    if "\\" in key or "\x00" in key:
        raise ValueError(f"object key contains a backslash or NUL: {key!r}")
    if key.startswith("/"):
        raise ValueError(f"object key is absolute: {key!r}")
    segments = key.split("/")
    # Empty and "." segments are harmless on disk but would make two spellings name one file,
    # which S3 treats as different objects; refusing them keeps both backends in agreement.
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(f"object key has an empty, '.' or '..' segment: {key!r}")
    return segments


class FolderStore:
    """Objects as files under `root`; keys are relative POSIX paths."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self._root = root.resolve()

    @property
    def root(self) -> Path:
        """The absolute directory objects are stored under."""
        return self._root

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*validate_key(key))

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write the object atomically: readers see the old bytes or the new ones, never a partial file."""
        path = self._path(key)
        await asyncio.to_thread(_write_atomically, path, data)

    def writer(self, key: str, content_type: str) -> FolderWriter:
        """A streamed object: a temp file in the key's folder, fsynced and renamed into place by `commit`."""
        return FolderWriter(self._path(key))

    async def get(self, key: str) -> bytes:
        """Read the whole object, or raise ObjectNotFound."""
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            # A directory or a path through a file is not an object either.
            raise ObjectNotFound(key) from exc

    async def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
            await asyncio.to_thread(path.unlink)

    async def exists(self, key: str) -> bool:
        """Whether a file is stored under the key."""
        path = self._path(key)
        return await asyncio.to_thread(path.is_file)

    async def presigned_get_url(self, key: str, expires_in: int) -> str | None:
        """A local folder has no direct download URL."""
        self._path(key)
        return None

    async def check(self) -> None:
        """Raise OSError unless the root exists and a file can be created in it."""
        await asyncio.to_thread(_probe_writable, self._root)

    async def close(self) -> None:
        """Nothing to release."""


class FolderWriter:
    """`ObjectWriter` over a temp file in the target folder (so the final rename stays on one filesystem): bytes
    are written in batches of WRITE_BATCH_BYTES in a worker thread; `commit` fsyncs and renames atomically (a
    reader sees the whole object or none); `abort` removes the temp file, or the object once committed."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._pending = bytearray()
        self._fd: int | None = None
        self._tmp: str | None = None
        self._committed = False
        self._aborted = False

    @property
    def temp_path(self) -> Path | None:
        """Where the bytes written so far are (None before the first batch was written, or once committed)."""
        return Path(self._tmp) if self._tmp is not None and not self._committed else None

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._aborted or self._committed:
            raise RuntimeError("the writer is closed")
        self._pending += data
        if len(self._pending) >= WRITE_BATCH_BYTES:
            await self._flush()

    async def flush(self) -> None:
        """Write what is pending to the temp file (not synced): a reader of `temp_path` then sees every byte."""
        if self._pending:
            await self._flush()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, bytearray()
        await asyncio.to_thread(self._write_batch, batch)

    def _write_batch(self, batch: bytearray) -> None:
        if self._fd is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._fd, self._tmp = tempfile.mkstemp(dir=self._path.parent, prefix=_TMP_PREFIX)
        view = memoryview(batch)
        while view:
            view = view[os.write(self._fd, view) :]

    async def commit(self) -> None:
        if self._aborted or self._committed:
            raise RuntimeError("the writer is closed")
        batch, self._pending = self._pending, bytearray()
        await asyncio.to_thread(self._commit, batch)
        self._committed = True

    def _commit(self, batch: bytearray) -> None:
        self._write_batch(batch)  # also creates the temp file of an empty object
        assert self._fd is not None and self._tmp is not None
        os.fchmod(self._fd, _FILE_MODE)
        # Without fsync a crash after the rename can leave an empty file under the final name.
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        os.replace(self._tmp, self._path)

    async def abort(self) -> None:
        if self._aborted:
            return
        self._aborted = True
        self._pending = bytearray()
        await asyncio.to_thread(self._remove)

    def _remove(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        doomed = str(self._path) if self._committed else self._tmp
        if doomed is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(doomed)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temp file must live in the target directory so os.replace is a same-filesystem rename.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fchmod(tmp.fileno(), _FILE_MODE)
            # Without fsync a crash after the rename can leave an empty file under the final name.
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _probe_writable(root: Path) -> None:
    if not root.is_dir():
        raise FileNotFoundError(f"media root {root} does not exist or is not a directory")
    # os.access lies for root and on some network filesystems; creating a file is the real test.
    fd, tmp_name = tempfile.mkstemp(dir=root, prefix=_TMP_PREFIX)
    os.close(fd)
    os.unlink(tmp_name)
