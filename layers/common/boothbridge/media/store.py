"""The ObjectStore protocol: where media bytes live (S3-compatible bucket or a local folder)."""

from __future__ import annotations

from typing import Protocol


class ObjectNotFound(Exception):
    """The key does not exist in the store."""


class ObjectWriter(Protocol):
    """One object written piece by piece as its bytes arrive (`ObjectStore.writer`), never collected whole.

    Nothing is visible under the key until `commit` returns. `abort` removes whatever was written, before or after
    the commit (an upload refused once stored is deleted the same way); it is idempotent and never raises for a
    writer that wrote nothing. After `abort` the writer takes no more bytes."""

    async def write(self, data: bytes | bytearray | memoryview) -> None: ...

    async def commit(self) -> None: ...

    async def abort(self) -> None: ...


class ObjectStore(Protocol):
    """A flat key -> bytes store.

    Keys are relative POSIX-style paths made by the media service (`source/2026/11/22/<uuid>.jpg`); a backend
    must refuse keys that try to escape its root. `put` overwrites, `delete` is idempotent (deleting a missing
    key is not an error), `get` raises `ObjectNotFound`. `writer` streams one object (see `ObjectWriter`); the
    key is validated when the writer is made. Backends are built once per process and closed by the composition
    root.
    """

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def writer(self, key: str, content_type: str) -> ObjectWriter: ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...

    async def exists(self, key: str) -> bool: ...

    async def presigned_get_url(self, key: str, expires_in: int) -> str | None:
        """A direct download URL valid for `expires_in` seconds, or None when the backend has none."""
        ...

    async def check(self) -> None:
        """Raise if the store is unreachable (used by /health)."""
        ...

    async def close(self) -> None: ...
