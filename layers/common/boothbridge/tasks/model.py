"""A machine-client task as callers submit it and read it back (issue 15; SPEC §11). Pydantic models: the task API
(`functions/api_v1/routes/tasks.py`) takes `TaskSpec` as its body and answers `TaskView`; the AIGE facade builds
`TaskSpec`s from its own request bodies.

Shapes:
- `InputRef`: exactly one of `url` (http/https, fetched by `tasks.inputs`), `base64` (plain, or a `data:` URI) or
  `media_id` (an image the caller uploaded with `POST /api/v1/media`, or a task output's media id).
- `TaskStep`: `provider_id`, `operation_id`, `settings` (validated against the operation's `settings_schema`, as a
  slot's), `inputs`: the operation's named images (its catalog media fields, e.g. `template_media_id`) as
  `InputRef`s; each becomes that setting's media id.
- `TaskSpec`: `steps` (1 to 8: each step's output is the next one's input), `source` (the first step's input
  image; None for a prompt-only operation), `finishing` (the slot finishing stage; {} = none), `client_ref` (the
  caller's own ids, returned as given), `write_url` / `read_url` (deliver the primary output by HTTP PUT to a
  pre-signed URL; `read_url` is shown once it is delivered), `phase_names` (operation id -> the phase the status
  shows while it runs; `tasks.phases.DEFAULT_PHASES` otherwise), `api` (which API made it: `tasks`, `aige`,
  `artmancer`).

What PostgreSQL cannot store is refused with the body's other problems (400 `validation_error`, nothing stored): a
NUL character, an unpaired surrogate or a non-finite number anywhere in `clientRef` or `phaseNames`
(`storable`). `writeUrl` / `readUrl` must be http(s) URLs with a host, no user:password and no control characters
or spaces (`delivery_url`): anything else could never be PUT to, and would sit `pending` until the result TTL.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from boothbridge.errors import AppError

MAX_URL_CHARS = 4096
# What resolving a task's input images can answer (`tasks.inputs`, `tasks.fetch`), as "status code" for the
# OpenAPI documents of every API that submits tasks.
INPUT_ERRORS = (
    "400 input_empty",
    "400 input_url_invalid",
    "400 input_fetch_failed",
    "400 input_base64_invalid",
    "403 input_private_address",
    "404 media_not_found",
    "410 media_expired",
    "413 input_too_large",
    "415 input_not_image",
    "422 image_undecodable",
    "422 image_too_many_pixels",
)
_URL_FORBIDDEN = frozenset(map(chr, [*range(0x21), 0x7F]))  # control characters and the space
_SURROGATES = range(0xD800, 0xE000)


def delivery_url(url: str) -> str:
    """`url` when it is an http(s) URL with a host, no credentials, no control characters, spaces or unpaired
    surrogates; ValueError (why, never the URL: it may carry a signature) otherwise."""
    if any(ch in _URL_FORBIDDEN or ord(ch) in _SURROGATES for ch in url):
        raise ValueError("must not contain spaces, control characters or unpaired surrogates")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise ValueError("not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user name or password")
    return url


def storable(value: Any) -> Any:
    """`value` (JSON) when PostgreSQL can store it; ValueError naming the first path that holds a NUL character,
    an unpaired surrogate (in a string or a key) or a non-finite number."""
    from boothbridge.slots.rules import unstorable_paths  # the slot rules' check (imported late: catalog, jsonschema)

    if found := unstorable_paths(value):
        where, why = found[0]
        raise ValueError(f"{where}: {why}" if where else why)
    return value


class InputRef(BaseModel):
    """One input image: exactly one of `url`, `base64` or `media_id`."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=MAX_URL_CHARS, description="an http(s) URL of the image")
    base64: str | None = Field(None, description="the image's bytes in base64, plain or as a data: URI")
    media_id: uuid.UUID | None = Field(None, description="an image uploaded with POST /api/v1/media")

    @model_validator(mode="after")
    def _exactly_one(self) -> InputRef:
        given = [name for name in ("url", "base64", "media_id") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of url, base64 or media_id")
        return self


class TaskStep(BaseModel):
    """One step: a provider's operation with its settings and named input images."""

    model_config = ConfigDict(extra="forbid")

    provider_id: str = Field(min_length=1, max_length=100)
    operation_id: str = Field(min_length=1, max_length=100)
    settings: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, InputRef] = Field(
        default_factory=dict, description="the operation's named images (its media settings, e.g. template_media_id)"
    )


class TaskSpec(BaseModel):
    """A task as submitted (`POST /api/v1/tasks`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    steps: list[TaskStep] = Field(min_length=1, max_length=8)
    source: InputRef | None = None
    finishing: dict[str, Any] = Field(default_factory=dict)
    client_ref: dict[str, Any] = Field(default_factory=dict, alias="clientRef")
    write_url: str | None = Field(None, max_length=MAX_URL_CHARS, alias="writeUrl")
    read_url: str | None = Field(None, max_length=MAX_URL_CHARS, alias="readUrl")
    phase_names: dict[str, str] | None = Field(None, alias="phaseNames")
    api: Literal["tasks", "aige", "artmancer"] = "tasks"

    @field_validator("client_ref", "phase_names")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        return storable(value)

    @field_validator("write_url", "read_url")
    @classmethod
    def _delivery_url(cls, value: str | None) -> str | None:
        return None if value is None else delivery_url(value)


class TaskOutput(BaseModel):
    index: int  # 0: the primary output; 1..: further outputs in the provider's order
    media_id: uuid.UUID
    mime: str  # image/jpeg, image/png, video/mp4, ...
    url: str  # GET it with the API key: /api/v1/tasks/{id}/outputs/{index}


class TaskError(BaseModel):
    code: str
    message: str


class TaskDelivery(BaseModel):
    index: int
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    read_url: str | None  # shown once delivered
    # A failed delivery's reason; while `pending` after a failed try, that try's (it will be tried again).
    error: TaskError | None


class TaskView(BaseModel):
    """A task as its caller reads it. `status`: the job's (`queued`, `running`, `waiting_provider`, `succeeded`,
    `failed`, `cancelled`); `phase`: AIGE's name for what it does now (`tasks.phases`); `progress` 0.0-1.0."""

    id: uuid.UUID
    api: str
    client_ref: dict[str, Any]
    status: str
    phase: str
    step_index: int
    step_count: int
    progress: float
    outputs: list[TaskOutput]
    result_data: dict[str, Any] | None
    error: TaskError | None
    deliveries: list[TaskDelivery]
    cost: float | None
    created_at: datetime
    started_at: datetime | None = None  # when a worker first took it; None while it has never run
    finished_at: datetime | None


class TaskPage(BaseModel):
    items: list[TaskView]
    total: int
    limit: int
    offset: int


class UploadedMedia(BaseModel):
    """An input image stored for the caller (`POST /api/v1/media`)."""

    id: uuid.UUID
    sha256: str
    mime: str
    size_bytes: int
    expires_at: datetime | None


def task_not_found(task_id: object) -> AppError:
    """404 `task_not_found`: no such task, or another operator's (existence is not revealed)."""
    return AppError(404, "task_not_found", "no such task", {"task_id": str(task_id)[:100]})


def parse_task_id(raw: str) -> uuid.UUID:
    """A task id from a path: anything that is not a uuid is a task that does not exist."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise task_not_found(raw) from None
