"""Scheduled cleanup: expired media, abandoned provider callbacks, stale jobs, ended sessions, the append-only
tables' rows older than LOG_RETENTION_DAYS, and due deliveries of task outputs. Safe when several runs overlap."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import text

from boothbridge.accounts.sessions import purge_expired as purge_expired_sessions
from boothbridge.db.engine import autocommit
from boothbridge.jobs import statements as sql
from boothbridge.jobs.callbacks import CallbackQueue
from boothbridge.jobs.dispatch import JobDispatcher
from boothbridge.jobs.notifications import NotificationHub
from boothbridge.media.service import MediaService
from boothbridge.tasks.delivery import TaskDeliveries

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class CleanupReport:
    media_removed: int
    callbacks_abandoned: int
    jobs_redispatched: int
    logs_removed: dict[str, int] = field(default_factory=dict)
    deliveries_made: int = 0  # PUTs of task outputs to their callers' writeUrls (tasks.delivery)

    def as_dict(self) -> dict[str, int]:
        return {
            "media_removed": self.media_removed,
            "callbacks_abandoned": self.callbacks_abandoned,
            "jobs_redispatched": self.jobs_redispatched,
            # rows past LOG_RETENTION_DAYS, listed only when there were some
            **{f"{table}_removed": count for table, count in self.logs_removed.items() if count},
            **({"deliveries_made": self.deliveries_made} if self.deliveries_made else {}),
        }


class Cleanup:
    """The scheduled cleanup pass, built once per process by `boothbridge.bootstrap` with the parts it uses."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        media: MediaService,
        callbacks: CallbackQueue,
        dispatcher: JobDispatcher,
        hub: NotificationHub | None,
        log_retention_days: int,
        delivery_allows_private: bool = True,
    ) -> None:
        self.engine = engine
        self.media = media
        self.callbacks = callbacks
        self.dispatcher = dispatcher
        self.hub = hub  # wakes this process's waiters of an abandoned callback at once
        self.log_retention_days = log_retention_days
        # Task outputs due at their callers' writeUrls: on AWS nothing else runs the pass (locally a loop does too).
        self.deliveries = TaskDeliveries(callbacks.sql, media, allow_private=delivery_allows_private)

    async def run(self, stale_grace_sec: float = 10.0) -> CleanupReport:
        """One scheduled cleanup pass: expired media, parked jobs whose callback never came, stale work handed
        to the workers again, ended sessions, log rows past retention, and task outputs due at their writeUrls.
        Idempotent; overlapping passes are safe."""
        media_removed = await self.media.purge_expired()
        abandoned = await self.callbacks.fail_abandoned()
        for job_id in abandoned:
            if self.hub is not None:
                self.hub.job_ended(job_id)
        async with autocommit(self.engine).connect() as conn:
            params = {"grace": stale_grace_sec, "batch": 100}
            stale = list((await conn.exec_driver_sql(sql.STALE_JOBS, params)).scalars())
        for job_id in stale:
            await self.dispatcher.dispatch(job_id)
        await purge_expired_sessions(self.engine)
        logs_removed = await self.purge_old_logs(self.log_retention_days)
        deliveries = await self.deliveries.run_due()
        report = CleanupReport(media_removed, len(abandoned), len(stale), logs_removed, deliveries)
        if any(report.as_dict().values()):
            log.info("cleanup: %s", report.as_dict())
        return report

    async def purge_old_logs(self, retention_days: int, batch: int = 1000, max_batches: int = 100) -> dict[str, int]:
        """Delete append-only rows older than `retention_days`, `batch` rows per transaction (at most
        `max_batches` per table and pass; the next pass goes on). processing_log rows are folded into
        `processing_log_totals` first. revoked_tokens needs no retention of its own: a row lives only until its
        token would have expired (`sessions.purge_expired`), and deleting it earlier would bring a logged-out
        token back to life."""
        cutoff = datetime.now(UTC) - timedelta(days=retention_days)
        removed = {"processing_log": 0, "login_failures": 0}
        for table, statement in (("processing_log", _FOLD_LOG), ("login_failures", _PURGE_LOGIN_FAILURES)):
            for _ in range(max_batches):
                async with self.engine.begin() as conn:
                    result = await conn.execute(statement, {"cutoff": cutoff, "batch": batch})
                    count = result.scalar_one() if table == "processing_log" else result.rowcount
                removed[table] += count
                if count < batch:
                    break
        return removed
