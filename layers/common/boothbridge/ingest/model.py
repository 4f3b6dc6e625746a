"""The ingest use case's data: the parsed booth form, the slot as ingest sees it, the outcome, and the errors
built from a job."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from boothbridge.errors import AppError
from boothbridge.jobs.model import JobRecord

# Form fields never recorded anywhere.
_SECRET_FIELDS = frozenset({"password"})


@dataclass(frozen=True)
class UploadedForm:
    """The parsed multipart body: the photo (if any) and every text field as sent.

    The photo is `file` when it was read into memory (an operator's test run), or was streamed to a `PhotoSink`
    as it arrived (`file` None, `streamed_size` its size in bytes). `body_wait_sec`: how long reading the body
    waited for the network (seconds). `password_verified`: the ingest password among `fields` was checked and right
    before the reading ended (a form cut off mid-photo after that is recorded as the booth's, not as a stranger's)."""

    file: bytes | None
    filename: str | None
    declared_type: str | None
    fields: dict[str, str]
    streamed_size: int | None = None
    body_wait_sec: float = 0.0
    password_verified: bool = False

    @property
    def photo_size(self) -> int | None:
        """The photo's size in bytes, None when the form had no photo part."""
        return len(self.file) if self.file is not None else self.streamed_size


class PhotoSink(Protocol):
    """Where the multipart reader sends the photo part as it arrives (`ingest.upload.PhotoUpload`). Either may
    raise an `AppError`, which ends the reading with that answer."""

    async def begin(self, fields: Mapping[str, str]) -> None:
        """The photo part begins; `fields` are the text fields read before it."""
        ...

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """The photo's next bytes, in order (the buffer may be reused once this returns)."""
        ...


@dataclass(frozen=True)
class SlotForIngest:
    """A slot as ingest runs it. `provider_id`/`operation_id`/`settings_json` mirror step 1 (None: not
    configured); `steps` (stored shape, `slots.pipeline`), `finishing`, `variants` and `variant_field` are its
    pipeline (`steps` [] with a provider and operation set: one step, those columns)."""

    id: str
    provider_id: str | None
    operation_id: str | None
    settings_json: dict[str, Any]
    failure_policy: str
    password_digest: str | None
    steps: list[dict[str, Any]] = field(default_factory=list)
    finishing: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, Any] = field(default_factory=dict)
    variant_field: str | None = None


@dataclass
class IngestOutcome:
    """What to answer: an image (status 200) or an error; `log_status` is what the processing log records, with
    `failed_step`/`failed_alternative` (where the job stopped, for a job that failed or was cancelled; else None)
    and `variant` (the request's choice as recorded, `ingest.choice`; None before the form was read)."""

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
    failed_step: int | None = None
    failed_alternative: int | None = None
    variant: dict[str, Any] | None = None


# What is kept of an authenticated booth's form (the processing log row, the job's request_meta): every field a
# known booth sends fits (DSLR Remote Pro's longest are Windows paths, at most 260 characters), and whatever a
# booth sends, the record stays bounded: at most this many fields, characters per name and value, and characters
# over all values (about 36 KB of UTF-8 at worst; a DSLR Remote Pro form records about 600 bytes).
MAX_RECORDED_FIELDS = 40
MAX_FIELD_NAME_CHARS = 64
MAX_FIELD_VALUE_CHARS = 512
MAX_RECORDED_VALUE_CHARS = 8192

# Error codes answered before the ingest password was verified: the sender is unknown, so its request is recorded
# as fixed-size facts only (how many fields, how big), never what it sent. (401 invalid_password is the one such
# answer that has a parsed form; 404/400/408/413 from before or while reading the body have none.)
UNVERIFIED_CODES = frozenset(
    {
        "invalid_password",
        "slot_not_found",
        "invalid_form",
        "file_too_large",
        "client_disconnected",
        "request_timeout",
    }
)


def public_fields(form: UploadedForm) -> dict[str, Any]:
    """An authenticated booth's form fields as recorded (never the password), capped (see MAX_RECORDED_*), plus
    what we know of the file. What was left out is counted under `_truncated`."""
    fields: dict[str, Any] = {}
    dropped = cut = 0
    budget = MAX_RECORDED_VALUE_CHARS
    for key, raw in form.fields.items():
        if key in _SECRET_FIELDS:
            continue
        if len(fields) >= MAX_RECORDED_FIELDS or budget <= 0:
            dropped += 1
            continue
        # NUL cannot be stored in PostgreSQL text or jsonb: it is dropped from what the booth sent.
        value = _no_nul(raw)
        keep = min(MAX_FIELD_VALUE_CHARS, budget)
        if len(value) > keep:
            cut += 1
            value = value[:keep]
        budget -= len(value)
        fields[_no_nul(key)[:MAX_FIELD_NAME_CHARS]] = value
    if dropped or cut:
        fields["_truncated"] = {"fields_dropped": dropped, "values_cut": cut}
    if form.photo_size is not None:
        fields["_file"] = {
            "filename": _no_nul(form.filename or "")[:255],
            "declared_type": _no_nul(form.declared_type)[:100] if form.declared_type else None,
            "size_bytes": form.photo_size,
        }
    return fields


def refused_fields(form: UploadedForm) -> dict[str, Any]:
    """What is recorded of a request refused before its password was verified: fixed-size facts about the form,
    never a name or value it carried (an unauthenticated sender must not be able to write into our tables)."""
    return {
        "_refused": {
            "field_count": len(form.fields),
            "field_chars": sum(len(k) + len(v) for k, v in form.fields.items()),
            "password_sent": bool(form.fields.get("password")),
            "file_bytes": form.photo_size,
        }
    }


def log_fields(form: UploadedForm, outcome: IngestOutcome) -> dict[str, Any]:
    """The processing log's `request_fields` for a request that ended with `outcome`: the booth's (capped) fields
    once its password was verified, plus the variant it chose (`_variant`, when chosen), fixed-size facts when it
    was refused before that."""
    if outcome.error is not None and outcome.error.code in UNVERIFIED_CODES and not form.password_verified:
        return refused_fields(form)
    fields = public_fields(form)
    if outcome.variant is not None:
        fields["_variant"] = outcome.variant
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
