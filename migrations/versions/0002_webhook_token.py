"""jobs.webhook_token_hash: the per-attempt secret an asynchronous provider's callback must present

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("webhook_token_hash", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "webhook_token_hash")
