"""Pipelines (issue 14): a slot's steps, finishing stage and variants; a job's pipeline, the step it is at, and a
record of each step it finished with (job_steps); where a failed request stopped (processing_log).

Existing slots become one-step pipelines (their provider, operation and settings are step 1, which those columns
keep mirroring). Jobs in flight keep `pipeline = {}`: one step, the one their columns name. The claim function now
starts a step's clock and clears the previous attempt's phase (rendered by boothbridge.jobs.statements).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 05:10:00
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLAIM_FUNCTION = r"""CREATE OR REPLACE FUNCTION boothbridge_claim(p_owner text, p_mine uuid[], p_lease double precision, p_providers text[], p_limits integer[], p_default_limit integer, p_max_jobs integer, p_enough integer, p_max_expiries integer, p_message text, p_taken_message text, p_only_id uuid)
RETURNS SETOF jobs LANGUAGE plpgsql VOLATILE ROWS 16 AS $claim$
DECLARE
    p_locked text[];
    v_ready jsonb;
BEGIN
    IF p_only_id IS NULL THEN
        SELECT array_agg(l.provider_id ORDER BY l.provider_id), jsonb_object_agg(l.provider_id, l.ready)
        INTO p_locked, v_ready
        FROM (WITH RECURSIVE queued_providers AS (
        (SELECT provider_id FROM jobs WHERE status = 'queued' ORDER BY provider_id LIMIT 1)
        UNION ALL
        SELECT (SELECT j.provider_id FROM jobs j WHERE j.status = 'queued' AND j.provider_id > q.provider_id
                ORDER BY j.provider_id LIMIT 1)
        FROM queued_providers q WHERE q.provider_id IS NOT NULL
    ), candidates AS (
        SELECT provider_id FROM queued_providers WHERE provider_id IS NOT NULL
        UNION
        SELECT provider_id FROM jobs WHERE status = 'running' AND (lease_expires_at <= now() AND (lease_expires_at > pg_postmaster_start_time() OR pg_postmaster_start_time() + make_interval(secs => p_lease) <= now()) AND NOT (lease_owner IS NOT DISTINCT FROM p_owner AND id = ANY(p_mine::uuid[])))
    ), w AS (
        SELECT c.provider_id,
               (SELECT count(*) FROM (
                    SELECT 1 FROM jobs q
                    WHERE q.status = 'queued' AND q.provider_id = c.provider_id AND q.run_after <= now()
                    LIMIT p_enough) AS queued_ready)
             + (SELECT count(*) FROM (
                    SELECT 1 FROM jobs r WHERE r.status = 'running' AND r.provider_id = c.provider_id AND (r.lease_expires_at <= now() AND (r.lease_expires_at > pg_postmaster_start_time() OR pg_postmaster_start_time() + make_interval(secs => p_lease) <= now()) AND NOT (r.lease_owner IS NOT DISTINCT FROM p_owner AND r.id = ANY(p_mine::uuid[])))
                    LIMIT p_enough) AS lapsed_ready) AS ready
        FROM candidates c
    )
    SELECT provider_id, ready,
           pg_advisory_xact_lock(hashtext('boothbridge.provider'), hashtext(provider_id)) AS granted
    FROM w WHERE ready > 0
    ORDER BY provider_id
        ) AS l;
    ELSE
        SELECT array_agg(l.provider_id ORDER BY l.provider_id), jsonb_object_agg(l.provider_id, l.ready)
        INTO p_locked, v_ready
        FROM (WITH w AS (SELECT provider_id, 1 AS ready FROM jobs WHERE id = p_only_id AND ((status = 'queued' AND run_after <= now()) OR (status = 'running' AND (lease_expires_at <= now() AND (lease_expires_at > pg_postmaster_start_time() OR pg_postmaster_start_time() + make_interval(secs => p_lease) <= now()) AND NOT (lease_owner IS NOT DISTINCT FROM p_owner AND id = ANY(p_mine::uuid[]))))))
    SELECT provider_id, ready,
           pg_advisory_xact_lock(hashtext('boothbridge.provider'), hashtext(provider_id)) AS granted
    FROM w WHERE ready > 0
    ORDER BY provider_id
        ) AS l;
    END IF;
    PERFORM set_config('boothbridge.claim_ready', coalesce(v_ready, '{}'::jsonb)::text, true);
    IF p_locked IS NULL THEN
        RETURN;
    END IF;
    IF p_only_id IS NULL THEN
        RETURN QUERY WITH cap AS (
        SELECT p.provider_id,
               coalesce(l.max_parallel, p_default_limit)
               - (SELECT count(*) FROM jobs r
                  WHERE r.provider_id = p.provider_id AND r.status = 'running' AND NOT (r.lease_expires_at <= now() AND (r.lease_expires_at > pg_postmaster_start_time() OR pg_postmaster_start_time() + make_interval(secs => p_lease) <= now()) AND NOT (r.lease_owner IS NOT DISTINCT FROM p_owner AND r.id = ANY(p_mine::uuid[])))) AS free
        FROM unnest(p_locked::text[]) AS p(provider_id)
        LEFT JOIN unnest(p_providers::text[], p_limits::int[]) AS l(provider_id, max_parallel)
            USING (provider_id)
    ), candidates AS (
        SELECT c.provider_id, c.free, q.id, q.run_after, q.created_at, false AS exhausted
        FROM cap c CROSS JOIN LATERAL (
            SELECT j.id, j.run_after, j.created_at FROM jobs j
            WHERE j.status = 'queued' AND j.provider_id = c.provider_id AND j.run_after <= now()
            ORDER BY j.run_after, j.created_at
            LIMIT greatest(least(c.free, p_max_jobs), 0)
        ) AS q
        WHERE c.free > 0
        UNION ALL
        SELECT c.provider_id, c.free, r.id, r.run_after, r.created_at, r.lease_expiries >= p_max_expiries
        FROM cap c CROSS JOIN LATERAL (
            SELECT j.id, j.run_after, j.created_at, j.lease_expiries FROM jobs j
            WHERE j.status = 'running' AND j.provider_id = c.provider_id AND (j.lease_expires_at <= now() AND (j.lease_expires_at > pg_postmaster_start_time() OR pg_postmaster_start_time() + make_interval(secs => p_lease) <= now()) AND NOT (j.lease_owner IS NOT DISTINCT FROM p_owner AND j.id = ANY(p_mine::uuid[])))
            ORDER BY j.run_after, j.created_at
            LIMIT greatest(least(c.free, p_max_jobs), 0)
        ) AS r
        WHERE c.free > 0
    ), ranked AS (
        SELECT id, run_after, created_at, free, exhausted,
               row_number() OVER (PARTITION BY provider_id ORDER BY run_after, created_at) AS place
        FROM candidates
    ), chosen AS (
        SELECT id, exhausted FROM ranked WHERE place <= free ORDER BY run_after, created_at LIMIT p_max_jobs
    ), failed AS (
        UPDATE jobs
        SET status = 'failed', error_code = 'lease_expired', error_message = p_message,
            lease_expiries = lease_expiries + 1,
            attempt_errors = attempt_errors || jsonb_build_array(jsonb_build_object(
                'attempt', attempt, 'code', 'lease_expired', 'message', p_message::text, 'retryable', false,
                'at', now())),
            finished_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL
        WHERE id IN (SELECT id FROM chosen WHERE exhausted)
          AND status = 'running' AND (lease_expires_at <= now() AND (lease_expires_at > pg_postmaster_start_time() OR pg_postmaster_start_time() + make_interval(secs => p_lease) <= now()) AND NOT (lease_owner IS NOT DISTINCT FROM p_owner AND id = ANY(p_mine::uuid[]))) AND lease_expiries >= p_max_expiries
        RETURNING id, pg_notify('bb_job_done', id::text)
    ), picked AS (
        SELECT id FROM jobs
        WHERE id IN (SELECT id FROM chosen WHERE NOT exhausted) AND ((status = 'queued' AND run_after <= now()) OR (status = 'running' AND (lease_expires_at <= now() AND (lease_expires_at > pg_postmaster_start_time() OR pg_postmaster_start_time() + make_interval(secs => p_lease) <= now()) AND NOT (lease_owner IS NOT DISTINCT FROM p_owner AND id = ANY(p_mine::uuid[])))))
        FOR UPDATE SKIP LOCKED
    ), taken AS (
        UPDATE jobs
        SET status = 'running', attempt = attempt + 1, lease_owner = p_owner,
            lease_expires_at = now() + make_interval(secs => p_lease), started_at = coalesce(started_at, now()),
            step_started_at = coalesce(step_started_at, now()), phase = NULL, updated_at = now(),
            lease_expiries = lease_expiries + (jobs.status = 'running')::int,
            max_attempts = max_attempts + (jobs.status = 'running')::int,
            attempt_errors = CASE WHEN jobs.status = 'running'
                THEN attempt_errors || jsonb_build_array(jsonb_build_object(
                    'attempt', attempt, 'code', 'lease_expired', 'message', p_taken_message::text,
                    'retryable', true, 'at', now()))
                ELSE attempt_errors END
        FROM picked WHERE jobs.id = picked.id
        RETURNING jobs.*
    )
    SELECT * FROM taken;
    ELSE
        RETURN QUERY WITH cap AS (
        SELECT p.provider_id,
               coalesce(l.max_parallel, p_default_limit)
               - (SELECT count(*) FROM jobs r
                  WHERE r.provider_id = p.provider_id AND r.status = 'running' AND NOT (r.lease_expires_at <= now() AND (r.lease_expires_at > pg_postmaster_start_time() OR pg_postmaster_start_time() + make_interval(secs => p_lease) <= now()) AND NOT (r.lease_owner IS NOT DISTINCT FROM p_owner AND r.id = ANY(p_mine::uuid[])))) AS free
        FROM unnest(p_locked::text[]) AS p(provider_id)
        LEFT JOIN unnest(p_providers::text[], p_limits::int[]) AS l(provider_id, max_parallel)
            USING (provider_id)
    ), candidates AS (
        SELECT c.provider_id, c.free, q.id, q.run_after, q.created_at, false AS exhausted
        FROM cap c CROSS JOIN LATERAL (
            SELECT j.id, j.run_after, j.created_at FROM jobs j
            WHERE j.status = 'queued' AND j.provider_id = c.provider_id AND j.run_after <= now()
              AND j.id = p_only_id
            ORDER BY j.run_after, j.created_at
            LIMIT greatest(least(c.free, p_max_jobs), 0)
        ) AS q
        WHERE c.free > 0
        UNION ALL
        SELECT c.provider_id, c.free, r.id, r.run_after, r.created_at, r.lease_expiries >= p_max_expiries
        FROM cap c CROSS JOIN LATERAL (
            SELECT j.id, j.run_after, j.created_at, j.lease_expiries FROM jobs j
            WHERE j.status = 'running' AND j.provider_id = c.provider_id AND (j.lease_expires_at <= now() AND (j.lease_expires_at > pg_postmaster_start_time() OR pg_postmaster_start_time() + make_interval(secs => p_lease) <= now()) AND NOT (j.lease_owner IS NOT DISTINCT FROM p_owner AND j.id = ANY(p_mine::uuid[])))
              AND j.id = p_only_id
            ORDER BY j.run_after, j.created_at
            LIMIT greatest(least(c.free, p_max_jobs), 0)
        ) AS r
        WHERE c.free > 0
    ), ranked AS (
        SELECT id, run_after, created_at, free, exhausted,
               row_number() OVER (PARTITION BY provider_id ORDER BY run_after, created_at) AS place
        FROM candidates
    ), chosen AS (
        SELECT id, exhausted FROM ranked WHERE place <= free ORDER BY run_after, created_at LIMIT p_max_jobs
    ), failed AS (
        UPDATE jobs
        SET status = 'failed', error_code = 'lease_expired', error_message = p_message,
            lease_expiries = lease_expiries + 1,
            attempt_errors = attempt_errors || jsonb_build_array(jsonb_build_object(
                'attempt', attempt, 'code', 'lease_expired', 'message', p_message::text, 'retryable', false,
                'at', now())),
            finished_at = now(), updated_at = now(), lease_owner = NULL, lease_expires_at = NULL
        WHERE id IN (SELECT id FROM chosen WHERE exhausted)
          AND status = 'running' AND (lease_expires_at <= now() AND (lease_expires_at > pg_postmaster_start_time() OR pg_postmaster_start_time() + make_interval(secs => p_lease) <= now()) AND NOT (lease_owner IS NOT DISTINCT FROM p_owner AND id = ANY(p_mine::uuid[]))) AND lease_expiries >= p_max_expiries
        RETURNING id, pg_notify('bb_job_done', id::text)
    ), picked AS (
        SELECT id FROM jobs
        WHERE id IN (SELECT id FROM chosen WHERE NOT exhausted) AND ((status = 'queued' AND run_after <= now()) OR (status = 'running' AND (lease_expires_at <= now() AND (lease_expires_at > pg_postmaster_start_time() OR pg_postmaster_start_time() + make_interval(secs => p_lease) <= now()) AND NOT (lease_owner IS NOT DISTINCT FROM p_owner AND id = ANY(p_mine::uuid[])))))
        FOR UPDATE SKIP LOCKED
    ), taken AS (
        UPDATE jobs
        SET status = 'running', attempt = attempt + 1, lease_owner = p_owner,
            lease_expires_at = now() + make_interval(secs => p_lease), started_at = coalesce(started_at, now()),
            step_started_at = coalesce(step_started_at, now()), phase = NULL, updated_at = now(),
            lease_expiries = lease_expiries + (jobs.status = 'running')::int,
            max_attempts = max_attempts + (jobs.status = 'running')::int,
            attempt_errors = CASE WHEN jobs.status = 'running'
                THEN attempt_errors || jsonb_build_array(jsonb_build_object(
                    'attempt', attempt, 'code', 'lease_expired', 'message', p_taken_message::text,
                    'retryable', true, 'at', now()))
                ELSE attempt_errors END
        FROM picked WHERE jobs.id = picked.id
        RETURNING jobs.*
    )
    SELECT * FROM taken;
    END IF;
END
$claim$"""


def _claim_function_0009() -> str:
    """The function as 0009 created it (downgrade restores it): that migration's own text, read from its file."""
    spec = importlib.util.spec_from_file_location("migration_0009", Path(__file__).with_name("0009_claim_function.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.CLAIM_FUNCTION)


_JSONB = postgresql.JSONB(astext_type=sa.Text())


def upgrade() -> None:
    op.add_column("slots", sa.Column("steps", _JSONB, server_default=sa.text("'[]'::jsonb"), nullable=False))
    op.add_column("slots", sa.Column("finishing", _JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False))
    op.add_column("slots", sa.Column("variants", _JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False))
    op.add_column("slots", sa.Column("variant_field", sa.Text(), nullable=True))
    op.execute(
        """
        UPDATE slots SET steps = jsonb_build_array(jsonb_build_object(
            'provider_id', provider_id, 'operation_id', operation_id, 'settings_json', settings_json,
            'alternatives', '[]'::jsonb, 'optional', false))
        WHERE provider_id IS NOT NULL AND operation_id IS NOT NULL
        """
    )
    op.add_column("jobs", sa.Column("pipeline", _JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False))
    op.add_column("jobs", sa.Column("step_index", sa.Integer(), server_default="0", nullable=False))
    op.add_column("jobs", sa.Column("alternative", sa.Integer(), server_default="0", nullable=False))
    op.add_column("jobs", sa.Column("step_attempt_base", sa.Integer(), server_default="0", nullable=False))
    op.add_column("jobs", sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("input_media_id", sa.UUID(), nullable=True))
    op.add_column("jobs", sa.Column("phase", sa.Text(), nullable=True))
    op.create_table(
        "job_steps",
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("alternative", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("operation_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("cost", sa.Numeric(12, 6), nullable=True),
        sa.Column("error_code", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("output_media_id", sa.UUID(), nullable=True),
        sa.CheckConstraint("status IN ('succeeded', 'failed', 'skipped')", name="job_steps_status_check"),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "step_index", "alternative"),
    )
    op.add_column("processing_log", sa.Column("failed_step", sa.Integer(), nullable=True))
    op.add_column("processing_log", sa.Column("failed_alternative", sa.Integer(), nullable=True))
    op.execute(CLAIM_FUNCTION)


def downgrade() -> None:
    # The 0009 function sets no column this revision adds; it is restored before they go (the function's
    # row type follows the table).
    op.execute(_claim_function_0009())
    op.drop_column("processing_log", "failed_alternative")
    op.drop_column("processing_log", "failed_step")
    op.drop_table("job_steps")
    for column in (
        "phase",
        "input_media_id",
        "step_started_at",
        "step_attempt_base",
        "alternative",
        "step_index",
        "pipeline",
    ):
        op.drop_column("jobs", column)
    for column in ("variant_field", "variants", "finishing", "steps"):
        op.drop_column("slots", column)
