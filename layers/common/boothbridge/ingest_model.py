"""The ingest use case's data: the parsed booth form, the slot as ingest sees it, the outcome, and the errors
built from a job."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from boothbridge.errors import AppError
from boothbridge.jobs.model import JobRecord

# Form fields never recorded anywhere.
_SECRET_FIELDS = frozenset({"password"})


@dataclass(frozen=True)
class UploadedForm:
    """The parsed multipart body: the photo (if any) and every text field as sent."""

    file: bytes | None
    filename: str | None
    declared_type: str | None
    fields: dict[str, str]


@dataclass(frozen=True)
class SlotForIngest:
    id: str
    provider_id: str | None
    operation_id: str | None
    settings_json: dict[str, Any]
    failure_policy: str
    password_digest: str | None


@dataclass
class IngestOutcome:
    """What to answer: an image (status 200) or an error; `log_status` is what the processing log records."""

    status: int
    log_status: str
    image: bytes | None = None
    mime: str | None = None
    error: AppError | None = None
    job_id: uuid.UUID | None = None
    fallback: bool = False
    cost: float | None = None
    result_media_id: uuid.UUID | None = None
    processing_ms: int = 0
    headers: dict[str, str] = field(default_factory=dict)


def public_fields(form: UploadedForm) -> dict[str, Any]:
    """The booth's form fields as recorded (never the password), plus what we know of the file."""
    # NUL cannot be stored in PostgreSQL text or jsonb: it is dropped from what the booth sent.
    fields: dict[str, Any] = {
        _no_nul(k)[:200]: _no_nul(v)[:1000] for k, v in form.fields.items() if k not in _SECRET_FIELDS
    }
    if form.file is not None:
        fields["_file"] = {
            "filename": _no_nul(form.filename or "")[:255],
            "declared_type": _no_nul(form.declared_type) if form.declared_type else None,
            "size_bytes": len(form.file),
        }
    return fields


def _no_nul(text: str) -> str:
    return text.replace("\x00", "")


def too_large(limit: int) -> AppError:
    return AppError(413, "file_too_large", "the upload is larger than accepted", {"max_bytes": limit})


def provider_failed(job: JobRecord, message: str | None = None) -> AppError:
    """502 for a job that failed: `details.reason` is the job's error code, `details.provider_message` what the
    provider (or the worker) said, e.g. which quota is used up and when it resets."""
    details: dict[str, Any] = {"job_id": str(job.id), "reason": job.error_code, "attempts": job.attempt}
    if job.error_message:
        details["provider_message"] = job.error_message
    if message is None and job.error_code == "quota_exhausted" and job.error_message:
        message = job.error_message
    return AppError(502, "provider_failed", message or "the provider could not process the photo", details)
