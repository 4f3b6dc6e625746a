"""The claim's access path per provider: queued jobs indexed by (provider_id, run_after, created_at), so a claim
reads the few oldest ready jobs of each provider (and finds which providers have any) with index seeks instead of
ranking every claimable job. Replaces jobs_claimable_idx (run_after alone), whose other readers (the stale-job scan,
the queue-depth metric) read queued rows only and are served by the new partial index as well.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_QUEUED = sa.text("status = 'queued'")


def upgrade() -> None:
    op.create_index(
        "jobs_queued_provider_idx", "jobs", ["provider_id", "run_after", "created_at"], postgresql_where=_QUEUED
    )
    op.drop_index("jobs_claimable_idx", table_name="jobs", postgresql_where=_QUEUED)


def downgrade() -> None:
    op.create_index("jobs_claimable_idx", "jobs", ["run_after"], postgresql_where=_QUEUED)
    op.drop_index("jobs_queued_provider_idx", table_name="jobs", postgresql_where=_QUEUED)
