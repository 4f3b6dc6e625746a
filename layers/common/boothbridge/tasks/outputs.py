"""What a task's job keeps besides its primary output (issue 15): further outputs (`ProviderResult.extra`) as media
rows listed in `jobs.extra_media_ids`, the result's JSON (`ProviderResult.data`, or a `ProviderData` record) in
`jobs.result_data`. Used by the worker (`jobs.runner`) and the webhook path (`jobs.webhooks`); the statements are
in `boothbridge.jobs.step_statements`.

A task's pipeline snapshot carries `"task": true` (`is_task`): the runner accepts a record result only for a task
(a booth slot never offers record operations: there it stays `result_not_media`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, LiteralString

from psycopg.types.json import Jsonb

from boothbridge.db.raw import RawDb
from boothbridge.media.ref import MediaRef
from boothbridge.media.service import MediaService
from boothbridge.providers.base import ProviderResult

TASK_MARK = "task"  # the key in `jobs.pipeline` that says the job is a task's


def is_task(pipeline: Mapping[str, Any]) -> bool:
    """Whether a job's pipeline snapshot is a task's."""
    return pipeline.get(TASK_MARK) is True


def has_further(result: ProviderResult) -> bool:
    """Whether `result` carries anything besides its primary output."""
    return bool(result.extra) or result.data is not None


async def record_further(
    db: RawDb,
    media: MediaService,
    statement: LiteralString,
    fence: Mapping[str, Any],
    result: ProviderResult,
    expires_at: datetime,
) -> bool:
    """Store `result.extra`'s bytes and run `statement` (`OUTPUTS` or `OUTPUTS_BY_CALLBACK`, fenced by `fence`'s
    parameters) to record them and `result.data` on the job. False (the bytes removed again) when the fence
    refused: the caller's completion would be refused too. Raises what the store or the database raise (the bytes
    are removed first)."""
    refs: list[MediaRef] = []
    try:
        for item in result.extra:
            refs.append(await media.write_bytes("result", item.data, item.mime))
        params = {
            **fence,
            "ids": [str(ref.id) for ref in refs],
            "keys": [ref.storage_key for ref in refs],
            "mimes": [ref.mime for ref in refs],
            "sizes": [ref.size_bytes for ref in refs],
            "shas": [ref.sha256 for ref in refs],
            "expires": expires_at,
            "data": Jsonb(result.data) if result.data is not None else None,
        }
        applied = await db.one(statement, params) is not None
    except BaseException:
        for ref in refs:
            await media.drop_bytes(ref)
        raise
    if not applied:
        for ref in refs:
            await media.drop_bytes(ref)
    return applied
