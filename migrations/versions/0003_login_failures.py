"""login_failures: failed operator sign-ins per (username, client address), for the login throttle

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 04:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("client_address", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "login_failures_pair_created_idx",
        "login_failures",
        ["username", "client_address", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("login_failures_pair_created_idx", table_name="login_failures")
    op.drop_table("login_failures")
