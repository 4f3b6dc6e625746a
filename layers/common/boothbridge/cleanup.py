"""Retention: remove media whose `expires_at` has passed. Safe when several cleanups run at once."""

from __future__ import annotations

import logging

from sqlalchemy import text

from boothbridge.container import Container

log = logging.getLogger(__name__)


async def purge_expired_media(c: Container, batch: int = 200) -> int:
    """Delete expired media objects (bytes, then rows) in batches; returns how many were removed.

    Rows are locked with SKIP LOCKED, so two overlapping runs split the work instead of deleting twice.
    """
    removed = 0
    while True:
        async with c.engine.begin() as conn:
            rows = (
                await conn.execute(
                    text(
                        """
                        SELECT id, storage_key FROM media_objects
                        WHERE expires_at IS NOT NULL AND expires_at <= now()
                        ORDER BY expires_at
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
