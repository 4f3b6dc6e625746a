"""Media retention: expired objects are refused at read time before cleanup runs; cleanup removes them;
the booth's photo expires SOURCE_TTL_SEC after its request ends; results live for the result TTL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from boothbridge.bootstrap import Container
from boothbridge.media.service import MediaExpired, MediaNotFound
from boothbridge.settings import Settings
from tests.support.booth import configure_slot, credentials, jpeg, operator_token, post_photo
from tests.support.storage import bucket_keys


async def test_expired_media_is_refused_before_cleanup_and_removed_by_it(container: Container) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = await container.media.save("result", b"\x89PNG old", "image/png", past)
    alive = await container.media.save("result", b"\x89PNG new", "image/png", datetime.now(UTC) + timedelta(hours=1))
    template = await container.media.save("template", b"\x89PNG frame", "image/png", None)

    with pytest.raises(MediaExpired):
        await container.media.read(expired.id)
    assert expired.storage_key in bucket_keys(container.settings)  # still there: refused, not yet removed

    assert await container.media.purge_expired() == 1
    with pytest.raises(MediaNotFound):
        await container.media.read(expired.id)
    assert expired.storage_key not in bucket_keys(container.settings)
    assert (await container.media.read(alive.id))[0] == b"\x89PNG new"
    assert (await container.media.read(template.id))[0] == b"\x89PNG frame"


async def test_overlapping_cleanups_split_the_work(container: Container) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    for i in range(30):
        await container.media.save("result", f"old {i}".encode(), "image/png", past)
    counts = await asyncio.gather(*(container.media.purge_expired(batch=5) for _ in range(3)))
    assert sum(counts) == 30
    assert bucket_keys(container.settings) == []


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"source_ttl_sec": 60, "result_ttl_sec": 7200}


async def test_ingest_sets_source_and_result_expiry(
    client: httpx.AsyncClient, settings: Settings, container: Container
) -> None:
    token = await operator_token(client, settings.credentials_path)
    await configure_slot(client, token, "slot-001", "local", "white_balance", {})
    r = await post_photo(client, "slot-001", jpeg(), credentials(settings.credentials_path)["ingest_password"])
    assert r.status_code == 200
    ended = datetime.now(UTC)
    async with container.engine.connect() as conn:
        rows = {
            row.kind: row.expires_at
            for row in await conn.execute(
                text("SELECT kind, expires_at FROM media_objects WHERE job_id = :id"), {"id": r.headers["x-job-id"]}
            )
        }
    assert abs((rows["source"] - ended).total_seconds() - 60) < 5
    assert abs((rows["result"] - ended).total_seconds() - 7200) < 5
