"""Scheduled cleanup: expired media, abandoned provider callbacks, stale jobs, and the append-only tables' rows
older than LOG_RETENTION_DAYS. Safe when several runs overlap."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from boothbridge.accounts.sessions import purge_expired as purge_expired_sessions
from boothbridge.bootstrap import Container
from boothbridge.db.engine import autocommit
from boothbridge.jobs import statements as sql
from boothbridge.jobs.callbacks import CallbackQueue

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


# Retention of processing_log, in one statement per batch: take the oldest rows past the cutoff (SKIP LOCKED, so
# overlapping passes split them), delete them, and add them to their slots' totals in the same transaction (the
# all-time and since-reset counts stay exact). The slots are read FOR SHARE, so a statistics reset running at the
# same moment either happens first (its new last_reset_at is seen here) or waits for this batch and then zeroes
# the since-reset totals this batch added to.
_FOLD_LOG = text(
    """
    WITH doomed AS (
        SELECT id FROM processing_log WHERE created_at < :cutoff
        ORDER BY created_at LIMIT :batch FOR UPDATE SKIP LOCKED
    ),
    gone AS (
        DELETE FROM processing_log l USING doomed d WHERE l.id = d.id
        RETURNING l.slot_id, l.status, l.is_test, l.created_at
    ),
    owners AS (
        SELECT s.id, s.last_reset_at FROM slots s WHERE s.id IN (SELECT slot_id FROM gone) FOR SHARE
    ),
    folded AS (
        SELECT g.slot_id,
               count(*) AS requests,
               count(*) FILTER (WHERE g.status = 'SUCCESS') AS processed,
               count(*) FILTER (WHERE g.created_at >= coalesce(o.last_reset_at, '-infinity')) AS r_requests,
               count(*) FILTER (WHERE g.status = 'SUCCESS'
                                  AND g.created_at >= coalesce(o.last_reset_at, '-infinity')) AS r_processed,
               count(*) FILTER (WHERE g.status IN ('ERROR', 'TIMEOUT')
                                  AND g.created_at >= coalesce(o.last_reset_at, '-infinity')) AS r_failed
        FROM gone g JOIN owners o ON o.id = g.slot_id
        WHERE NOT g.is_test
        GROUP BY g.slot_id
    ),
    totals AS (
        INSERT INTO processing_log_totals AS t (slot_id, requests, processed, since_reset_requests,
                                                since_reset_processed, since_reset_failed)
        SELECT slot_id, requests, processed, r_requests, r_processed, r_failed FROM folded
        ON CONFLICT (slot_id) DO UPDATE SET
            requests = t.requests + excluded.requests,
            processed = t.processed + excluded.processed,
            since_reset_requests = t.since_reset_requests + excluded.since_reset_requests,
            since_reset_processed = t.since_reset_processed + excluded.since_reset_processed,
            since_reset_failed = t.since_reset_failed + excluded.since_reset_failed,
            updated_at = now()
    )
    SELECT count(*) FROM gone
    """
)

_PURGE_LOGIN_FAILURES = text(
    """
    DELETE FROM login_failures WHERE id IN (
        SELECT id FROM login_failures WHERE created_at < :cutoff LIMIT :batch FOR UPDATE SKIP LOCKED
    )
    """
)


async def purge_old_logs(
    c: Container, retention_days: int, batch: int = 1000, max_batches: int = 100
) -> dict[str, int]:
    """Delete append-only rows older than `retention_days`, `batch` rows per transaction (at most `max_batches`
    per table and pass; the next pass goes on). processing_log rows are folded into `processing_log_totals`
    first. revoked_tokens needs no retention of its own: a row lives only until its token would have expired
    (`sessions.purge_expired`), and deleting it earlier would bring a logged-out token back to life."""
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    removed = {"processing_log": 0, "login_failures": 0}
    for table, statement in (("processing_log", _FOLD_LOG), ("login_failures", _PURGE_LOGIN_FAILURES)):
        for _ in range(max_batches):
            async with c.engine.begin() as conn:
                result = await conn.execute(statement, {"cutoff": cutoff, "batch": batch})
                count = result.scalar_one() if table == "processing_log" else result.rowcount
            removed[table] += count
            if count < batch:
                break
    return removed


@dataclass(frozen=True)
class CleanupReport:
    media_removed: int
    callbacks_abandoned: int
    jobs_redispatched: int
    logs_removed: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {
            "media_removed": self.media_removed,
            "callbacks_abandoned": self.callbacks_abandoned,
            "jobs_redispatched": self.jobs_redispatched,
            # rows past LOG_RETENTION_DAYS, listed only when there were some
            **{f"{table}_removed": count for table, count in self.logs_removed.items() if count},
        }


async def run_cleanup(c: Container, stale_grace_sec: float = 10.0) -> CleanupReport:
    """One scheduled cleanup pass: expired media, parked jobs whose callback never came, and stale work
    handed to the workers again. Idempotent; overlapping passes are safe."""
    media_removed = await purge_expired_media(c)
    abandoned = await CallbackQueue(c.queue).fail_abandoned()
    for job_id in abandoned:
        if c.hub is not None:
            c.hub.job_ended(job_id)
    async with autocommit(c.engine).connect() as conn:
        params = {"grace": stale_grace_sec, "batch": 100}
        stale = list((await conn.exec_driver_sql(sql.STALE_JOBS, params)).scalars())
    for job_id in stale:
        await c.dispatcher.dispatch(job_id)
    await purge_expired_sessions(c.engine)
    logs_removed = await purge_old_logs(c, c.settings.log_retention_days)
    report = CleanupReport(media_removed, len(abandoned), len(stale), logs_removed)
    if report.media_removed or report.callbacks_abandoned or report.jobs_redispatched or any(logs_removed.values()):
        log.info("cleanup: %s", report.as_dict())
    return report
