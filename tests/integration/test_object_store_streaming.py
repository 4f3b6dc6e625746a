"""Streamed writes (`ObjectStore.writer`) against FolderStore and S3Store (moto over real HTTP): the bytes arrive
in pieces, nothing is visible before the commit, an abort leaves nothing behind (no temp file, no incomplete
multipart upload, no object), before or after the commit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from boothbridge.media.folder_store import FolderStore
from boothbridge.media.s3_store import PART_BYTES, S3Store
from boothbridge.media.store import ObjectStore

KEY = "source/2026/11/22/photo.jpg"


async def leftovers(store: ObjectStore) -> list[str]:
    """Everything the store holds: files (temp files too) under a folder; objects and incomplete multipart uploads
    in a bucket."""
    if isinstance(store, FolderStore):
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    assert isinstance(store, S3Store)
    client = store._client
    objects = await client.list_objects_v2(Bucket=store.bucket)
    uploads = await client.list_multipart_uploads(Bucket=store.bucket)
    return sorted(
        [o["Key"] for o in objects.get("Contents", [])] + [f"upload:{u['Key']}" for u in uploads.get("Uploads", [])]
    )


async def stream(store: ObjectStore, data: bytes, chunk: int = 65_537, before: bytes | None = None) -> None:
    writer = store.writer(KEY, "image/jpeg")
    for start in range(0, len(data), chunk):
        await writer.write(memoryview(data)[start : start + chunk])
    # Nothing of the new object is visible before the commit.
    assert (await store.get(KEY) if before is not None else await store.exists(KEY)) == (before or False)
    await writer.commit()


@pytest.mark.parametrize(
    "size",
    [0, 1000, PART_BYTES - 1, PART_BYTES, 2 * PART_BYTES + 7],
    ids=["empty", "small", "one-byte-under-a-part", "one-part", "three-parts"],
)
async def test_a_streamed_object_reads_back_byte_for_byte(store: ObjectStore, size: int) -> None:
    data = os.urandom(size)
    await stream(store, data)
    assert await store.get(KEY) == data
    assert await leftovers(store) == [KEY]


async def test_a_committed_object_replaces_an_earlier_one(store: ObjectStore) -> None:
    await store.put(KEY, b"old bytes, longer than the new", "image/jpeg")
    await stream(store, b"new", before=b"old bytes, longer than the new")
    assert await store.get(KEY) == b"new"


@pytest.mark.parametrize("size", [1000, PART_BYTES + 1], ids=["small", "multipart"])
async def test_an_abort_before_the_commit_leaves_nothing(store: ObjectStore, size: int) -> None:
    writer = store.writer(KEY, "image/jpeg")
    await writer.write(os.urandom(size))
    await writer.abort()
    await writer.abort()  # idempotent
    assert await leftovers(store) == []
    with pytest.raises(RuntimeError):
        await writer.write(b"more")


@pytest.mark.parametrize("size", [1000, PART_BYTES + 1], ids=["small", "multipart"])
async def test_an_abort_after_the_commit_deletes_the_object(store: ObjectStore, size: int) -> None:
    writer = store.writer(KEY, "image/jpeg")
    await writer.write(os.urandom(size))
    await writer.commit()
    assert await store.exists(KEY)
    await writer.abort()
    assert await leftovers(store) == []


async def test_an_abort_of_a_writer_that_wrote_nothing_is_harmless(store: ObjectStore) -> None:
    await store.writer(KEY, "image/jpeg").abort()
    assert await leftovers(store) == []


async def test_a_writer_refuses_an_escaping_key(store: ObjectStore) -> None:
    with pytest.raises(ValueError):
        store.writer("../x.jpg", "image/jpeg")


@pytest.mark.parametrize("store", ["s3"], indirect=True)
async def test_s3_holds_at_most_a_part_and_uploads_full_parts_as_they_fill(store: ObjectStore) -> None:
    assert isinstance(store, S3Store)
    writer = store.writer(KEY, "image/jpeg")
    await writer.write(os.urandom(PART_BYTES - 1))
    assert await leftovers(store) == []  # under one part: nothing sent yet (one PutObject at the commit)
    await writer.write(b"xy")
    assert await leftovers(store) == [f"upload:{KEY}"]  # the first part went out in a multipart upload
    await writer.commit()
    assert await leftovers(store) == [KEY]
    head = await store._client.head_object(Bucket=store.bucket, Key=KEY)
    assert head["ContentLength"] == PART_BYTES + 1 and head["ContentType"] == "image/jpeg"


async def test_folder_writes_a_temp_file_beside_the_object_until_the_commit(tmp_path: Path) -> None:
    folder = FolderStore(tmp_path)
    writer = folder.writer("d/p.jpg", "image/jpeg")
    await writer.write(b"abc")
    await writer.flush()
    temp = writer.temp_path
    assert temp is not None and temp.parent == tmp_path / "d" and temp.read_bytes() == b"abc"
    await writer.commit()
    assert writer.temp_path is None and not temp.exists()
    assert (tmp_path / "d" / "p.jpg").read_bytes() == b"abc"
    assert oct((tmp_path / "d" / "p.jpg").stat().st_mode & 0o777) == "0o644"
