"""jobs.booth_fallback_at: when the waiting booth is answered with its own photo (slot policy `original`)

After that moment no new paid attempt of the job may start: the booth already has its final answer.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("booth_fallback_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "booth_fallback_at")
