"""Scheduled cleanup: expired media, abandoned provider callbacks, stale jobs. Safe when several runs overlap."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import text

from boothbridge.container import Container
from boothbridge.jobs.callbacks import CallbackQueue
from boothbridge.sessions import purge_expired as purge_expired_sessions

log = logging.getLogger(__name__)


async def purge_expired_media(c: Container, batch: int = 200) -> int:
    """Delete expired media objects (bytes, then rows) in batches; returns how many were removed.

    Rows are locked with SKIP LOCKED, so two overlapping runs split the work instead of deleting twice.
    """
    return await _purge(c, "expires_at IS NOT NULL AND expires_at <= now()", batch)


async def clear_results(c: Container, batch: int = 200) -> int:
    """The settings page's "clear media cache": delete every kept result now (a re-post is processed again)."""
    return await _purge(c, "kind = 'result'", batch)


async def _purge(c: Container, condition: str, batch: int) -> int:
    removed = 0
    while True:
        async with c.engine.begin() as conn:
            rows = (
                await conn.execute(
                    text(
                        f"""
                        SELECT id, storage_key FROM media_objects
                        WHERE {condition}
                        ORDER BY expires_at NULLS LAST
                        LIMIT :batch
                        FOR UPDATE SKIP LOCKED
                        """
                    ),
                    {"batch": batch},
                )
            ).all()
            if not rows:
                return removed
            for row in rows:
                await c.store.delete(row.storage_key)
            await conn.execute(
                text("DELETE FROM media_objects WHERE id = ANY(:ids)"), {"ids": [row.id for row in rows]}
            )
        removed += len(rows)
        if len(rows) < batch:
            return removed


@dataclass(frozen=True)
class CleanupReport:
    media_removed: int
    callbacks_abandoned: int
    jobs_redispatched: int

    def as_dict(self) -> dict[str, int]:
        return {
            "media_removed": self.media_removed,
            "callbacks_abandoned": self.callbacks_abandoned,
            "jobs_redispatched": self.jobs_redispatched,
        }


# Work no worker has picked up: queued for a while past its time, or running under a lease that ran out (its
# worker died). Listening workers find these by themselves; on AWS nobody listens, so cleanup re-invokes.
_STALE_JOBS = text(
    """
    SELECT id FROM jobs
    WHERE (status = 'queued' AND run_after <= now() - make_interval(secs => :grace))
       OR (status = 'running' AND lease_expires_at <= now())
    ORDER BY run_after
    LIMIT :batch
    """
)


async def run_cleanup(c: Container, stale_grace_sec: float = 10.0) -> CleanupReport:
    """One scheduled cleanup pass: expired media, parked jobs whose callback never came, and stale work
    handed to the workers again. Idempotent; overlapping passes are safe."""
    media_removed = await purge_expired_media(c)
    abandoned = await CallbackQueue(c.queue).fail_abandoned()
    for job_id in abandoned:
        if c.hub is not None:
            c.hub.job_ended(job_id)
    async with c.db.connect() as conn:
        stale = list((await conn.execute(_STALE_JOBS, {"grace": stale_grace_sec, "batch": 100})).scalars())
    for job_id in stale:
        await c.dispatcher.dispatch(job_id)
    await purge_expired_sessions(c.db)
    report = CleanupReport(media_removed, len(abandoned), len(stale))
    if report.media_removed or report.callbacks_abandoned or report.jobs_redispatched:
        log.info("cleanup: %s", report.as_dict())
    return report
