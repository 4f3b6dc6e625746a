"""media_objects.owner_id (an operator sees, reuses and references only their own uploads) and
processing_log_totals (per-slot counts of log rows deleted by the retention cleanup)

Existing media rows get no owner: they are never found by hash nor reused by a new upload, and an operator may
keep naming one in a slot only while one of their own slots already names it (see boothbridge.media.service).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("media_objects", sa.Column("owner_id", sa.Integer(), nullable=True))
    op.create_foreign_key(
        "media_objects_owner_id_fkey", "media_objects", "users", ["owner_id"], ["id"], ondelete="RESTRICT"
    )
    op.create_index("ix_media_objects_owner_id", "media_objects", ["owner_id"])
    op.create_table(
        "processing_log_totals",
        sa.Column("slot_id", sa.Text(), nullable=False),
        sa.Column("requests", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("processed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("since_reset_requests", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("since_reset_processed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("since_reset_failed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["slot_id"], ["slots.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("slot_id"),
    )


def downgrade() -> None:
    op.drop_table("processing_log_totals")
    op.drop_index("ix_media_objects_owner_id", table_name="media_objects")
    op.drop_constraint("media_objects_owner_id_fkey", "media_objects", type_="foreignkey")
    op.drop_column("media_objects", "owner_id")
