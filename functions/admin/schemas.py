"""The operator API's bodies: what each route reads and what it answers, as pydantic models.

The response models are the OpenAPI document's success bodies, so they describe exactly what the routes send
(the browser UI and API clients read these names): a field that may be JSON null is typed `X | None`; a field
that is sometimes absent (only in /health's reports) is `X | SkipJsonSchema[None] = None`, documented as optional
and never null. Response models forbid extra keys: a service adding a key the model does not describe fails the
tests (the response validation error) instead of silently vanishing from the answer and the document.
Timestamps are sent as the ISO 8601 strings they are today (`isoformat()`), so they are strings here.
"""

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

# PostgreSQL text cannot hold NUL (U+0000): input that would reach a query with one is refused as invalid (400).
NO_NUL = r"^[^\x00]*$"
DEFAULT_PUBLIC_TTL_SEC = 900  # for /api/media/extend; registration defaults to PUBLIC_LINK_TTL_SEC
MAX_PUBLIC_TTL_SEC = 7 * 24 * 3600

# An aware datetime's `isoformat()` (RFC 3339, e.g. `2024-04-07T10:00:00.123456+00:00`).
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class Answer(BaseModel):
    """Base of the response models: no keys beyond those declared (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")


# ---- auth -------------------------------------------------------------------------------------------------------


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=100, pattern=NO_NUL)
    password: str = Field(min_length=1, max_length=200)


class LoginResponse(Answer):
    access_token: str
    token_type: str = "bearer"
    expires_in_sec: int


# ---- providers --------------------------------------------------------------------------------------------------


class IngestLimits(Answer):
    max_parallel_jobs: int
    timeout_sec: float
    allowed_mime: list[str]
    max_file_size_mb: float


class OperationInfo(Answer):
    id: str
    name: str
    description: str
    required_settings: list[str]
    settings_schema: dict[str, Any] = Field(description="JSON Schema (2020-12) of the slot's `settings_json`")
    produces: Literal["image", "video", "record"] = Field(
        description="what the operation makes with this provider: only `image` operations may be a booth slot's "
        "steps (422 `operation_not_for_slots`); `video` and `record` (a fine-tune) are for machine clients' tasks"
    )


class ProviderInfo(Answer):
    id: str
    name: str
    description: str
    available: bool = Field(description="whether this deployment has the provider's adapter")
    currency: str | None = Field(description="the currency of the provider's prices; null without pricing")
    ingest: IngestLimits
    operations: list[OperationInfo]


class ProviderCatalog(Answer):
    providers: list[ProviderInfo]


# ---- slots ------------------------------------------------------------------------------------------------------


_FINISHING = (
    "the finishing stage applied to the final image; every field optional, {} = none: `width`, `height` (px), "
    "`fit` (`fit` | `fill` | `pad`), `pad_color` (`#rrggbb`), `sharpen` (0-1), `overlay_media_id` (an uploaded "
    "image placed over the result), `format` (`jpeg` | `png`), `quality` (1-100), `max_bytes`"
)
_VARIANTS = (
    "named variants (at most 20; names of 1-40 letters, digits, `_`, `-`): `{name: {step index (0-based, as a "
    "string): {settings overrides}}}`, chosen by the ingest query parameter `variant` or the form field "
    "`variant_field`; unknown names run the defaults"
)
_VARIANT_FIELD = "the booth form field (e.g. a survey answer) that names the variant; null: none (at most 100 chars)"


class StepCallBody(BaseModel):
    """One provider call: a step's own, or one of its alternatives."""

    provider_id: str = Field(min_length=1, max_length=100)
    operation_id: str = Field(min_length=1, max_length=100)
    settings_json: dict[str, Any] = Field(default_factory=dict)


class StepBody(StepCallBody):
    alternatives: list[StepCallBody] = Field(
        default_factory=list,
        description="at most 3, tried in order when the step fails for good or cannot end before the deadline",
    )
    optional: bool = Field(
        False, strict=True, description="skipped (its input passed on) when it and its alternatives fail (true/false)"
    )


class SlotPipelineBody(BaseModel):
    """A slot's pipeline in either shape: `steps` (1-8), or the seed-003 `provider_id` / `operation_id` /
    `settings_json` (one step). With `steps`, the top-level three must be absent or equal to step 1's."""

    provider_id: str | None = Field(None, min_length=1, max_length=100, description="seed-003 shape: step 1's")
    operation_id: str | None = Field(None, min_length=1, max_length=100, description="seed-003 shape: step 1's")
    settings_json: dict[str, Any] | None = Field(None, description="seed-003 shape: step 1's (default {})")
    steps: list[StepBody] | None = Field(None, description="the ordered steps; each step's output is the next's input")
    finishing: dict[str, Any] | None = Field(None, description=_FINISHING)
    variants: dict[str, dict[str, dict[str, Any]]] | None = Field(None, description=_VARIANTS)
    variant_field: str | None = Field(None, description=_VARIANT_FIELD)


class SlotPut(SlotPipelineBody):
    name: str = Field(max_length=200, pattern=NO_NUL)
    failure_policy: str | None = Field(default=None, description="'error' (502/504) or 'original' (booth photo)")
    version: int | None = Field(default=None, description="the version last read; 409 if the slot changed since")


class StepCall(Answer):
    provider_id: str
    operation_id: str
    settings_json: dict[str, Any]


class Step(StepCall):
    alternatives: list[StepCall] = Field(description="tried in order when the step fails for good")
    optional: bool = Field(description="skipped when it and its alternatives fail")


class Slot(Answer):
    id: str
    name: str
    provider_id: str | None = Field(description="step 1's (the seed-003 shape); null when unconfigured")
    operation_id: str | None = Field(description="step 1's; null when unconfigured")
    settings_json: dict[str, Any] = Field(description="step 1's own settings")
    steps: list[Step] = Field(description="the pipeline; [] when unconfigured")
    finishing: dict[str, Any] = Field(description=_FINISHING)
    variants: dict[str, dict[str, dict[str, Any]]] = Field(description=_VARIANTS)
    variant_field: str | None = Field(description=_VARIANT_FIELD)
    typical_sec: float = Field(description="the sum of the steps' providers' typical call time (own calls), s")
    exceeds_wait: bool = Field(description="typical_sec is over T_SYNC_RESPONSE: booths may get 504 or the fallback")
    ingest_url: str = Field(description="where the booth posts its photos")
    is_configured: bool
    failure_policy: str
    version: int
    last_reset_at: Timestamp | None
    updated_at: Timestamp


class ListMeta(Answer):
    total: int


class SlotList(Answer):
    data: list[Slot]
    meta: ListMeta


class SlotSaved(Answer):
    id: str
    updated_at: Timestamp
    version: int


# ---- media ------------------------------------------------------------------------------------------------------


class ExtendRequest(BaseModel):
    id: uuid.UUID
    ttl_sec: int = Field(DEFAULT_PUBLIC_TTL_SEC, ge=1, le=MAX_PUBLIC_TTL_SEC)


class MediaObject(Answer):
    id: uuid.UUID
    public_url: str
    expires_at: Timestamp | None = Field(description="null for a template (kept while referenced)")
    mime: str
    size_bytes: int
    sha256: str
    kind: str = Field(description="'template' or 'public'")


# ---- stats ------------------------------------------------------------------------------------------------------


class SlotFigures(Answer):
    id: str
    name: str
    template_media_id: str | None
    processed: int
    requests: int
    p95_response_ms: int | None
    error_pct: float | None
    last_cost: float | None
    last_cost_currency: str | None
    total_cost: float
    total_cost_by_currency: dict[str, float]
    last_reset_at: str | None = Field(description="ISO 8601 in UTC with `Z`")
    template_url: str | None


class StatsSummary(Answer):
    data: list[SlotFigures]
    processed_all_time: int


class StatsRange(Answer):
    """The range as understood: dates stay dates, datetimes are UTC with `Z`."""

    from_: str = Field(alias="from")
    to: str
    group_by: str


PeriodStart = Annotated[
    str, Field(description="an hour: ISO 8601 UTC datetime with `Z`; a day, week or month: its first day (a date)")
]


class Period(Answer):
    period_start: PeriodStart
    success: int
    errors: int
    timeouts: int
    avg_response_ms: int | None
    p95_response_ms: int | None
    cost: float


class GlobalPeriod(Answer):
    # The same keys as Period plus period_end, spelled out: a subclass's fields would come after the base's.
    period_start: PeriodStart
    period_end: str = Field(description="the period's last day (a date)")
    success: int
    errors: int
    timeouts: int
    avg_response_ms: int | None
    p95_response_ms: int | None
    cost: float


class SlotSeries(Answer):
    slot_id: str
    range: StatsRange
    metrics: list[Period]


class PageMeta(Answer):
    page: int
    page_size: int
    total: int = Field(description="the number of periods in the range")


class GlobalSeries(Answer):
    data: list[GlobalPeriod]
    meta: PageMeta
    range: StatsRange


# ---- health -----------------------------------------------------------------------------------------------------


class CheckReport(Answer):
    ok: bool
    latency_ms: int
    error: str | SkipJsonSchema[None] = Field(None, description="the exception's class name, when not ok")
    reason: str | SkipJsonSchema[None] = Field(None, description="a short code, e.g. `timeout`, when known")


class ListenReport(Answer):
    connected: bool
    down_sec: float | SkipJsonSchema[None] = None


class DatabaseReport(CheckReport):
    listen: ListenReport | SkipJsonSchema[None] = Field(None, description="notifications (informational)")
    unreachable_sec: float | SkipJsonSchema[None] = None


class HealthChecks(Answer):
    database: DatabaseReport
    storage: CheckReport


class ProviderHealth(Answer):
    available: bool
    configured: bool


class HealthReport(Answer):
    status: Literal["ok", "unavailable"]
    checks: HealthChecks
    providers: dict[str, ProviderHealth]
