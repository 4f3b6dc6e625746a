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
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from boothbridge.errors import AppError

MAX_URL_CHARS = 4096


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
