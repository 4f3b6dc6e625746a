"""Machine clients (issue 15): API keys, tasks on the jobs table, deliveries to a caller's pre-signed writeUrl.

A task is a job of kind `task`: no slot, an owner (the operator whose API key submitted it), the API it came through
and that API's own ids (`client_ref`), possibly no input image (a prompt-only operation), several outputs
(`extra_media_ids`) and a record result (`result_data`). Existing jobs are booth jobs.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_index("ix_api_keys_owner_id", "api_keys", ["owner_id"])
    op.alter_column("jobs", "slot_id", nullable=True)
    op.alter_column("jobs", "source_media_id", nullable=True)
    op.alter_column("jobs", "source_sha256", nullable=True)
    op.add_column("jobs", sa.Column("kind", sa.Text(), server_default="booth", nullable=False))
    op.add_column("jobs", sa.Column("owner_id", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("api_key_id", sa.UUID(), nullable=True))
    op.add_column("jobs", sa.Column("api", sa.Text(), nullable=True))
    op.add_column(
        "jobs",
        sa.Column("client_ref", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
    )
    op.add_column(
        "jobs",
        sa.Column("extra_media_ids", postgresql.JSONB(), server_default=sa.text("'[]'::jsonb"), nullable=False),
    )
    op.add_column("jobs", sa.Column("result_data", postgresql.JSONB(), nullable=True))
    op.create_foreign_key("jobs_owner_id_fkey", "jobs", "users", ["owner_id"], ["id"], ondelete="RESTRICT")
    op.create_foreign_key("jobs_api_key_id_fkey", "jobs", "api_keys", ["api_key_id"], ["id"], ondelete="RESTRICT")
    op.create_check_constraint("jobs_kind_check", "jobs", "kind IN ('booth', 'task')")
    op.create_check_constraint("jobs_booth_has_slot_check", "jobs", "kind = 'task' OR slot_id IS NOT NULL")
    op.create_index(
        "jobs_owner_created_idx",
        "jobs",
        ["owner_id", "created_at"],
        postgresql_where=sa.text("owner_id IS NOT NULL"),
    )
    op.create_table(
        "task_deliveries",
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("output_index", sa.Integer(), nullable=False),
        sa.Column("write_url", sa.Text(), nullable=False),
        sa.Column("read_url", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error_code", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="task_deliveries_status_check"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "output_index"),
    )
    op.create_index(
        "task_deliveries_due_idx",
        "task_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("task_deliveries_due_idx", table_name="task_deliveries")
    op.drop_table("task_deliveries")
    # Tasks have no slot or photo to fit the booth-only schema: they go with it.
    op.execute("DELETE FROM jobs WHERE kind = 'task'")
    op.drop_index("jobs_owner_created_idx", table_name="jobs")
    op.drop_constraint("jobs_booth_has_slot_check", "jobs", type_="check")
    op.drop_constraint("jobs_kind_check", "jobs", type_="check")
    op.drop_constraint("jobs_api_key_id_fkey", "jobs", type_="foreignkey")
    op.drop_constraint("jobs_owner_id_fkey", "jobs", type_="foreignkey")
    for column in ("result_data", "extra_media_ids", "client_ref", "api", "api_key_id", "owner_id", "kind"):
        op.drop_column("jobs", column)
    op.alter_column("jobs", "source_sha256", nullable=False)
    op.alter_column("jobs", "source_media_id", nullable=False)
    op.alter_column("jobs", "slot_id", nullable=False)
    op.drop_index("ix_api_keys_owner_id", table_name="api_keys")
    op.drop_table("api_keys")
