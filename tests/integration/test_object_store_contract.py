"""One ObjectStore contract, run against FolderStore and S3Store (moto over real HTTP)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from boothbridge.media.backends import build_object_store
from boothbridge.media.folder_store import FolderStore
from boothbridge.media.s3_store import S3Store
from boothbridge.media.store import ObjectNotFound, ObjectStore
from boothbridge.settings import Settings
from tests.support.moto_server import (
    FAKE_ACCESS_KEY_ID,
    FAKE_REGION,
    FAKE_SECRET_ACCESS_KEY,
    fresh_s3_store,
)

ESCAPING_KEYS = ["../x", "/etc/passwd", "a/../../x", "", "a\\b", "a\x00b", "./a", "a//b", "a/"]


@pytest.fixture
async def s3_store(moto_endpoint: str) -> AsyncIterator[S3Store]:
    s3 = fresh_s3_store(moto_endpoint)
    await s3.open()
    await s3.create_bucket_if_missing()
    try:
        yield s3
    finally:
        await s3.close()


@pytest.mark.parametrize(
    "data",
    [b"", bytes(range(256)), os.urandom(5 * 1024 * 1024)],
    ids=["empty", "all-byte-values", "5mb"],
)
async def test_put_get_roundtrip(store: ObjectStore, data: bytes) -> None:
    await store.put("source/2026/11/22/photo.jpg", data, "image/jpeg")
    assert await store.get("source/2026/11/22/photo.jpg") == data


async def test_overwrite_replaces_including_with_shorter_data(store: ObjectStore) -> None:
    await store.put("k.jpg", b"first version, fairly long", "image/jpeg")
    await store.put("k.jpg", b"second", "image/jpeg")
    assert await store.get("k.jpg") == b"second"


async def test_get_missing_raises_object_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        await store.get("missing.jpg")


async def test_delete_then_get_raises_object_not_found(store: ObjectStore) -> None:
    await store.put("gone.jpg", b"bytes", "image/jpeg")
    await store.delete("gone.jpg")
    with pytest.raises(ObjectNotFound):
        await store.get("gone.jpg")
    assert not await store.exists("gone.jpg")


async def test_delete_missing_is_not_an_error(store: ObjectStore) -> None:
    await store.delete("never-existed.jpg")
    await store.delete("never/existed/either.jpg")


async def test_exists(store: ObjectStore) -> None:
    assert not await store.exists("e.jpg")
    await store.put("e.jpg", b"x", "image/jpeg")
    assert await store.exists("e.jpg")


async def test_nested_keys_and_prefixes_are_not_objects(store: ObjectStore) -> None:
    await store.put("a/b/c.jpg", b"nested", "image/jpeg")
    assert await store.get("a/b/c.jpg") == b"nested"
    assert await store.exists("a/b/c.jpg")
    assert not await store.exists("a/b")
    with pytest.raises(ObjectNotFound):
        await store.get("a/b")
    # Deleting a prefix deletes nothing.
    await store.delete("a/b")
    assert await store.get("a/b/c.jpg") == b"nested"


async def test_check_succeeds(store: ObjectStore) -> None:
    await store.check()


async def test_escaping_keys_are_refused(store: ObjectStore) -> None:
    # One test looping over keys, not parametrised: each S3 fixture setup costs a client and a bucket.
    for key in ESCAPING_KEYS:
        with pytest.raises(ValueError):
            await store.put(key, b"evil", "image/jpeg")
        with pytest.raises(ValueError):
            await store.get(key)
        with pytest.raises(ValueError):
            await store.exists(key)
        with pytest.raises(ValueError):
            await store.delete(key)
        with pytest.raises(ValueError):
            await store.presigned_get_url(key, 60)


@pytest.mark.parametrize("key", ESCAPING_KEYS)
async def test_folder_escaping_keys_write_nothing_outside_root(tmp_path: Path, key: str) -> None:
    root = tmp_path / "jail" / "media"
    folder = FolderStore(root)
    with pytest.raises(ValueError):
        await folder.put(key, b"evil", "image/jpeg")
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []
    assert sorted(tmp_path.rglob("*")) == [tmp_path / "jail", root]


async def test_folder_presigned_url_is_none(tmp_path: Path) -> None:
    folder = FolderStore(tmp_path)
    await folder.put("p.jpg", b"x", "image/jpeg")
    assert await folder.presigned_get_url("p.jpg", 60) is None


async def test_folder_leaves_no_temp_files(tmp_path: Path) -> None:
    folder = FolderStore(tmp_path)
    await folder.put("d/p.jpg", b"one", "image/jpeg")
    await folder.put("d/p.jpg", b"two", "image/jpeg")
    await folder.check()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["d", "p.jpg"]


async def test_s3_presigned_url_serves_the_bytes(s3_store: S3Store) -> None:
    data = bytes(range(256)) * 4
    await s3_store.put("source/p.jpg", data, "image/jpeg")
    url = await s3_store.presigned_get_url("source/p.jpg", 300)
    assert url is not None
    # trust_env=False: a proxy from the environment must never see loopback test traffic.
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.get(url)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/jpeg"


async def test_s3_check_fails_for_missing_bucket(moto_endpoint: str) -> None:
    s3 = fresh_s3_store(moto_endpoint)
    await s3.open()
    try:
        with pytest.raises(ClientError):
            await s3.check()
    finally:
        await s3.close()


async def test_s3_create_bucket_if_missing_is_idempotent(s3_store: S3Store) -> None:
    await s3_store.create_bucket_if_missing()
    await s3_store.check()


async def test_s3_store_must_be_opened() -> None:
    s3 = S3Store("unopened")
    with pytest.raises(RuntimeError):
        await s3.get("k.jpg")
    await s3.close()


async def test_build_object_store_folder(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, media_root=tmp_path / "media")  # type: ignore[call-arg]
    built = await build_object_store(settings)
    try:
        assert isinstance(built, FolderStore)
        assert built.root == (tmp_path / "media").resolve()
    finally:
        await built.close()


async def test_build_object_store_s3(moto_endpoint: str) -> None:
    bucket = f"contract-{uuid.uuid4().hex}"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        s3_endpoint_url=moto_endpoint,
        s3_bucket=bucket,
        s3_access_key_id=FAKE_ACCESS_KEY_ID,
        s3_secret_access_key=FAKE_SECRET_ACCESS_KEY,
        s3_region=FAKE_REGION,
    )
    built = await build_object_store(settings)
    try:
        assert isinstance(built, S3Store)
        await built.create_bucket_if_missing()
        await built.put("k.jpg", b"via settings", "image/jpeg")
        assert await built.get("k.jpg") == b"via settings"
    finally:
        await built.close()
