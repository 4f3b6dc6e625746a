"""SQLAlchemy 2 models: the schema's description. Alembic migrations are its only source of change."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from boothbridge.jobs.status import JobStatus, sql_list


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONB,
        list[Any]: JSONB,
        datetime: DateTime(timezone=True),
    }


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(Text, unique=True)
    hashed_password: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Slot(Base):
    __tablename__ = "slots"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(Text, server_default="")
    provider_id: Mapped[str | None] = mapped_column(Text)
    operation_id: Mapped[str | None] = mapped_column(Text)
    settings_json: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # "error": answer 502/504; "original": answer 200 with the booth's own photo and X-Fallback: original.
    failure_policy: Mapped[str] = mapped_column(Text, server_default="error")
    # The pipeline (SPEC §4): the ordered steps, each `{provider_id, operation_id, settings_json, alternatives:
    # [{provider_id, operation_id, settings_json}], optional}`; provider_id / operation_id / settings_json above
    # mirror step 1 (the seed-003 shape). `finishing`: the stage applied to the final image; `variants`:
    # `{name: {step index: settings overrides}}`, chosen by the query parameter `variant` or the form field
    # `variant_field`. See boothbridge.slots.pipeline.
    steps: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    finishing: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    variants: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    variant_field: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    last_reset_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (CheckConstraint("failure_policy IN ('error', 'original')", name="slots_failure_policy_check"),)


class MediaObject(Base):
    __tablename__ = "media_objects"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    storage_key: Mapped[str] = mapped_column(Text, unique=True)
    mime: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(Text, index=True)
    kind: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # NULL = no expiry (templates referenced by slots).
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    # The operator who uploaded it (POST /api/media/register): only they find it by hash, reuse it on a new
    # upload, name it in a slot or extend it. NULL: objects made by the service itself (booth photos, results,
    # the links a provider downloads) and uploads from before owners were recorded (see boothbridge.media).
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)

    __table_args__ = (
        CheckConstraint("kind IN ('source', 'result', 'template', 'public')", name="media_objects_kind_check"),
    )


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    # NULL for a machine client's task (kind `task`): it belongs to `owner_id` through `api_key_id` instead.
    slot_id: Mapped[str | None] = mapped_column(ForeignKey("slots.id", ondelete="RESTRICT"))
    # `booth` (a photo posted to a slot, or an operator's test run of one) or `task` (boothbridge.tasks).
    kind: Mapped[str] = mapped_column(Text, server_default="booth")
    # A task's operator and the API key that submitted it (NULL for booth jobs): a key sees only its operator's.
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="RESTRICT"))
    # Which API a task came through (`tasks`, `aige`, `artmancer`) and that API's own ids and request fields
    # (e.g. AIGE's `avatar_id`, the phase names it reports): returned as that API defines them.
    api: Mapped[str | None] = mapped_column(Text)
    client_ref: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(Text, server_default=JobStatus.QUEUED.value)
    # The step (or alternative) the job is at now: the claim takes work per provider, so these always name the
    # provider that runs next. A step's input photo is `input_media_id` (the previous step's output), or the
    # booth's photo for the first step.
    provider_id: Mapped[str] = mapped_column(Text)
    operation_id: Mapped[str] = mapped_column(Text)
    # The step's settings as they were when the photo arrived (variant and booth fields applied): a later edit
    # does not change a job in flight.
    settings_json: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    # The whole pipeline as the job runs it (`{"steps": [...], "finishing": {...}, "max_attempts": n}`, see
    # boothbridge.jobs.pipeline); {} for a one-step job from before pipelines (the columns above are its step).
    pipeline: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    step_index: Mapped[int] = mapped_column(Integer, server_default="0")
    # 0: the step's own provider; k: its k-th alternative.
    alternative: Mapped[int] = mapped_column(Integer, server_default="0")
    # The attempt number the current step (alternative) started after: its attempts are `attempt - this`.
    step_attempt_base: Mapped[int] = mapped_column(Integer, server_default="0")
    step_started_at: Mapped[datetime | None] = mapped_column()
    input_media_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # What a running attempt is doing besides calling the provider (`uploading_image`); NULL: the status says it.
    phase: Mapped[str | None] = mapped_column(Text)
    # The first step's input; NULL for a task that starts from a prompt alone (text-to-image, a fine-tune).
    source_media_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    source_sha256: Mapped[str | None] = mapped_column(Text)
    result_media_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # Further outputs of the last step, in the provider's order, when it made several (media ids as strings).
    extra_media_ids: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    # A record the last step returned besides or instead of media (fal's seed/timings; a fine-tune's id).
    result_data: Mapped[dict[str, Any] | None] = mapped_column()
    attempt: Mapped[int] = mapped_column(Integer, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, server_default="3")
    # How often a worker's lease ran out on this job (it died or hung): counted apart from provider attempts,
    # limited by MAX_LEASE_EXPIRIES. A graceful hand-back counts neither.
    lease_expiries: Mapped[int] = mapped_column(Integer, server_default="0")
    run_after: Mapped[datetime] = mapped_column(server_default=func.now())
    deadline_at: Mapped[datetime] = mapped_column()
    # When the booth is answered with its own photo if no result has come (slot policy `original`; NULL when it
    # waits for a result or a 504): no paid attempt starts that cannot end before then.
    booth_fallback_at: Mapped[datetime | None] = mapped_column()
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    provider_ref: Mapped[str | None] = mapped_column(Text)
    # sha256 of the attempt's webhook secret: a provider callback must present the secret itself.
    webhook_token_hash: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    # One entry per failed attempt: {"attempt", "code", "message", "retryable", "at"}.
    attempt_errors: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    cost: Mapped[float | None] = mapped_column(Numeric(12, 6))
    request_meta: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    is_test: Mapped[bool] = mapped_column(Boolean, server_default="false")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            f"status IN {sql_list(JobStatus)}",
            name="jobs_status_check",
        ),
        # The claim's access path: each provider's ready work in arrival order (and which providers have any).
        Index(
            "jobs_queued_provider_idx",
            "provider_id",
            "run_after",
            "created_at",
            postgresql_where=text("status = 'queued'"),
        ),
        Index("jobs_running_lease_idx", "lease_expires_at", postgresql_where=text("status = 'running'")),
        # Retry-safety: at most one unfinished job per (slot, photo bytes); a re-post attaches to it.
        Index(
            "jobs_active_dedupe_uidx",
            "slot_id",
            "source_sha256",
            unique=True,
            postgresql_where=text(f"status IN {sql_list(JobStatus.ACTIVE)} AND NOT is_test"),
        ),
        Index("jobs_slot_sha_idx", "slot_id", "source_sha256", "created_at"),
        Index("jobs_slot_created_idx", "slot_id", "created_at"),
        # A machine client's tasks, newest first (the task list; ownership checks).
        Index("jobs_owner_created_idx", "owner_id", "created_at", postgresql_where=text("owner_id IS NOT NULL")),
        CheckConstraint("kind IN ('booth', 'task')", name="jobs_kind_check"),
        CheckConstraint("kind = 'task' OR slot_id IS NOT NULL", name="jobs_booth_has_slot_check"),
    )


class JobStep(Base):
    """A step (or one of its alternatives) a job has finished with: succeeded (its output is the next step's
    input), failed (the next alternative was tried), or skipped (an optional step that failed for good). The
    step a job is at now lives in the job's own row; a job that never leaves its first step writes none."""

    __tablename__ = "job_steps"

    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    step_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    alternative: Mapped[int] = mapped_column(Integer, primary_key=True)
    provider_id: Mapped[str] = mapped_column(Text)
    operation_id: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime] = mapped_column(server_default=func.now())
    cost: Mapped[float | None] = mapped_column(Numeric(12, 6))
    error_code: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    output_media_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))

    __table_args__ = (CheckConstraint("status IN ('succeeded', 'failed', 'skipped')", name="job_steps_status_check"),)


class ProcessingLog(Base):
    __tablename__ = "processing_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # NULL when the request named a slot that does not exist (the id asked for is kept in requested_slot).
    slot_id: Mapped[str | None] = mapped_column(ForeignKey("slots.id", ondelete="SET NULL"))
    requested_slot: Mapped[str] = mapped_column(Text)
    job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    status: Mapped[str] = mapped_column(Text)
    http_status: Mapped[int] = mapped_column(Integer)
    response_time_ms: Mapped[int] = mapped_column(Integer)
    cost: Mapped[float | None] = mapped_column(Numeric(12, 6))
    error_code: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    fallback: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # Where a failed job stopped: its step (0-based) and alternative (0: the step's own provider); NULL otherwise.
    failed_step: Mapped[int | None] = mapped_column(Integer)
    failed_alternative: Mapped[int | None] = mapped_column(Integer)
    is_test: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # The booth's form fields (time, hash, id, name, model, version, ... and any unknown ones), never the password.
    request_fields: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))

    __table_args__ = (
        CheckConstraint("status IN ('SUCCESS', 'ERROR', 'TIMEOUT')", name="processing_log_status_check"),
        Index("processing_log_slot_created_idx", "slot_id", "created_at"),
        Index("processing_log_created_idx", "created_at"),
    )


class ProcessingLogTotals(Base):
    """A slot's processing_log rows that the retention cleanup has deleted, as counts (booth requests only, never
    test runs): the all-time processed count and the since-reset counts are these plus the rows still kept.
    The `since_reset_*` columns count only deleted rows newer than the slot's last statistics reset, and a reset
    sets them to zero."""

    __tablename__ = "processing_log_totals"

    slot_id: Mapped[str] = mapped_column(ForeignKey("slots.id", ondelete="CASCADE"), primary_key=True)
    requests: Mapped[int] = mapped_column(BigInteger, server_default="0")
    processed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    since_reset_requests: Mapped[int] = mapped_column(BigInteger, server_default="0")
    since_reset_processed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    since_reset_failed: Mapped[int] = mapped_column(BigInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AppSetting(Base):
    __tablename__ = "app_settings"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class LoginFailure(Base):
    """A failed (or still unfinished) operator sign-in, per username and client address: the login throttle's
    memory (`boothbridge.accounts.login_guard`). Rows older than the window are purged as new attempts are written."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(Text)
    client_address: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        # The throttle's only access path: one pair's failures, newest first.
        Index("login_failures_pair_created_idx", "username", "client_address", "created_at"),
    )


class RevokedToken(Base):
    """An operator token ended by logout before its expiry (`boothbridge.accounts.sessions`); kept until it would have
    expired anyway, then purged by the scheduled cleanup."""

    __tablename__ = "revoked_tokens"

    token_id: Mapped[str] = mapped_column(Text, primary_key=True)
    expires_at: Mapped[datetime] = mapped_column()


class ApiKey(Base):
    """A machine client's API key (`boothbridge.accounts.api_keys`): created, named and revoked by its operator on
    the settings page, shown once. Only the key's sha256 is stored (the key is 256 random bits, so a fast hash is
    enough: nothing to guess); `prefix` is its first characters, shown in the list so an operator can tell keys
    apart. A revoked key stays (its tasks name it) and is refused from `revoked_at` on."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(Text)
    prefix: Mapped[str] = mapped_column(Text)
    key_hash: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class TaskDelivery(Base):
    """One output of a task to PUT to the caller's pre-signed `writeUrl` (`boothbridge.tasks.delivery`): tried until
    delivered, refused (a 4xx: recorded, not retried) or `expires_at` (the result TTL) passes; a delivery worker
    claims due rows by `claimed_until` (a lease, so a crashed one is tried again)."""

    __tablename__ = "task_deliveries"

    job_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    output_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    write_url: Mapped[str] = mapped_column(Text)
    read_url: Mapped[str | None] = mapped_column(Text)
    # pending (waiting for the result or the next try), delivered, failed (refused, or out of time).
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(server_default=func.now())
    claimed_until: Mapped[datetime | None] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    error_code: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="task_deliveries_status_check"),
        Index("task_deliveries_due_idx", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    )
