"""jobs.lease_expiries: leases that ran out (a worker died or hung), counted apart from provider attempts

A job whose lease runs out more often than MAX_LEASE_EXPIRIES fails as `lease_expired`; provider failures keep
their own limit (`max_attempts`). A graceful stop hands the job back and counts neither.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("lease_expiries", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_column("jobs", "lease_expiries")
