"""Gemini request planning and response reading, free of I/O: parts, inline-vs-Files decisions, token
estimates, finish reasons, error mapping and cost. Used by `boothbridge.providers.gemini.adapter`.

**Quota refusals** (HTTP 429 `RESOURCE_EXHAUSTED`) are read from Google's error model, not from the status
alone. The body is `{"error": {"code", "message", "status", "details": [...]}}`, and its `details` may hold a
`type.googleapis.com/google.rpc.QuotaFailure` whose `violations[]` name each quota that is full (`quotaMetric`,
`quotaId`, `quotaDimensions` such as model and location, `quotaValue` = the limit) and a
`type.googleapis.com/google.rpc.RetryInfo` with `retryDelay` (`"47s"`) — see `google/rpc/error_details.proto`
(googleapis/googleapis: `QuotaFailure.Violation`, `RetryInfo`). The Gemini troubleshooting guide
(https://ai.google.dev/gemini-api/docs/troubleshooting) lists 429 `RESOURCE_EXHAUSTED` as "exceeded the rate
limit", and the rate-limits page (https://ai.google.dev/gemini-api/docs/rate-limits) says limits are measured
per minute (RPM, TPM) and per day (RPD, and for some models tokens per day), are applied per project, not per
API key, and that "Requests per day (RPD) quotas reset at midnight Pacific time". So:

- a violation of a per-day quota (`quotaId` `...PerDay...` or `quotaMetric` `..._per_day`, requests or tokens)
  is `quota_exhausted`, not retryable: the key is spent until the next midnight in `America/Los_Angeles`
  (`next_daily_reset`), whatever short `retryDelay` the body also carries;
- any other 429 (a per-minute violation, or no QuotaFailure at all) is `rate_limited`, retryable after the
  `Retry-After` header or `RetryInfo.retryDelay`.

**Malformed answers** are the provider's fault, not a crash of this adapter: google-genai 3.x parses a
successful `generateContent` body with a bare `json.loads` (so an HTML or truncated body raises
`json.JSONDecodeError`) and then validates it into `GenerateContentResponse` with pydantic (so JSON of another
shape raises `pydantic.ValidationError` titled `GenerateContentResponse`); the Files API's upload answer goes
through `errors.UnknownApiResponseError`. `answer_error` turns these into a retryable `bad_answer`.

**Images in answers** are chosen and labelled by their bytes (`boothbridge.images.upload.sniff_mime`): the part's
declared `mimeType` is kept for logging only.

The SDK's types are annotations here; the two functions that need the SDK at run time import it when called (the
adapter has loaded it by then), so building the adapter, which imports this module, does not load it.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import pydantic
from PIL import Image

from boothbridge.images import codec
from boothbridge.images.upload import sniff_mime
from boothbridge.providers.base import ImageInput, ImageSource, ProviderError, ProviderRequest, retry_hint_seconds

if TYPE_CHECKING:
    from google.genai import errors, types

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gemini-2.5-flash-image"
# "Always use the Files API when the total request size (files, text prompt, ...) is larger than 20 MB."
INLINE_REQUEST_LIMIT = 20 * 1000 * 1000
REQUEST_OVERHEAD_BYTES = 2048  # JSON keys, MIME types, generationConfig
SUPPORTED_INPUT_MIME = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
TOKENS_PER_TILE = 258
SAFETY_FINISH_REASONS = frozenset(
    {"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST", "SPII"}
)
# The second image of each operation (the booth photo always comes first, the text prompt last).
SECOND_IMAGE = {"style_transfer": "reference_media_id", "combine_images": "overlay_media_id", "change_image": None}
DEFAULT_STYLE_PROMPT = (
    "Transform the first image (a photobooth photograph) into the artistic style of the second image (the style "
    "reference). Preserve the original composition, the people, their faces, poses and expressions, but render "
    "everything with the colours, brushwork, textures and lighting of the style reference."
)


@dataclass(frozen=True)
class PlannedImage:
    image: ImageInput
    upload: bool  # through the Files API (else inline base64)
    tokens: int


@dataclass(frozen=True)
class CallPlan:
    """Everything one generateContent call needs, decided before the network is touched."""

    model: str
    images: tuple[PlannedImage, ...]
    prompt: str
    aspect_ratio: str | None
    tokens: int  # input-token estimate for the tokens/minute quota


def image_tokens(width: int, height: int) -> int:
    """Gemini 2.5 image input tokens: 258 if both sides <= 384 px, else 258 per crop-unit tile."""
    if width <= 384 and height <= 384:
        return TOKENS_PER_TILE
    unit = max(math.floor(min(width, height) / 1.5), 1)
    return TOKENS_PER_TILE * math.ceil(width / unit) * math.ceil(height / unit)


def base64_size(n: int) -> int:
    return 4 * math.ceil(n / 3)


def choose_uploads(sizes: list[int], prompt_bytes: int, limit: int = INLINE_REQUEST_LIMIT) -> set[int]:
    """Indexes of the images to send through the Files API (largest first) so the inline request fits `limit`."""
    total = REQUEST_OVERHEAD_BYTES + prompt_bytes + sum(base64_size(s) for s in sizes)
    chosen: set[int] = set()
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        if total <= limit:
            break
        chosen.add(index)
        total -= base64_size(sizes[index])
    return chosen


def _settings_error(message: str) -> ProviderError:
    return ProviderError("settings_invalid", message, retryable=False)


def _prepare_image(image: ImageSource, what: str) -> tuple[ImageInput, int]:
    """The image (in memory: the adapter reads it first) in a MIME type Gemini accepts (others are converted to PNG)
    and its token estimate."""
    if not isinstance(image, ImageInput):
        raise TypeError("the image must be in memory (GeminiProvider.run reads it before planning)")
    try:
        with Image.open(io.BytesIO(image.data)) as opened:
            width, height = opened.size
            if image.mime in SUPPORTED_INPUT_MIME:
                return image, image_tokens(width, height)
            data, mime = codec.encode(codec.decode(image.data), "png", 100)
            return ImageInput(data, mime), image_tokens(width, height)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ProviderError("image_undecodable", f"the {what} cannot be decoded", retryable=False) from exc


def plan_call(request: ProviderRequest, limit: int = INLINE_REQUEST_LIMIT) -> CallPlan:
    """Parts, model and output options for `request` (CPU work: call it in a worker thread)."""
    s = request.settings
    second = SECOND_IMAGE.get(request.operation_id, "")
    if second == "":
        raise ProviderError(
            "operation_unsupported", f"gemini does not support operation {request.operation_id!r}", retryable=False
        )
    prompt = str(s.get("prompt") or "").strip()
    if not prompt:
        if request.operation_id != "style_transfer":
            raise _settings_error("a prompt is required")
        prompt = DEFAULT_STYLE_PROMPT
    inputs = [_prepare_image(request.photo(), "photo")]
    if second is not None:
        if second not in request.media:
            raise ProviderError("template_missing", f"the slot's image {second} is missing", retryable=False)
        inputs.append(_prepare_image(request.media[second], "slot image"))
    uploads = choose_uploads([len(img.data) for img, _ in inputs], len(prompt.encode()), limit)
    images = tuple(PlannedImage(img, i in uploads, tokens) for i, (img, tokens) in enumerate(inputs))
    aspect = s.get("aspect_ratio")
    return CallPlan(
        model=str(s.get("model") or DEFAULT_MODEL),
        images=images,
        prompt=prompt,
        aspect_ratio=str(aspect) if aspect else None,
        tokens=sum(img.tokens for img in images) + math.ceil(len(prompt) / 4),
    )


def generation_config(plan: CallPlan) -> types.GenerateContentConfig:
    """Image-only output (`responseModalities: ["IMAGE"]`), plus `imageConfig.aspectRatio` when the slot sets one."""
    from google.genai import types  # here, not at import: see the module docstring

    image_config = types.ImageConfig(aspect_ratio=plan.aspect_ratio) if plan.aspect_ratio else None
    return types.GenerateContentConfig(response_modalities=["IMAGE"], image_config=image_config)


def _name(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def read_image(response: types.GenerateContentResponse, secrets: list[str]) -> ImageInput:
    """The first image part of the first candidate, chosen and labelled by its bytes; or `safety_blocked`,
    `bad_answer` (no candidates and no promptFeedback, or image parts whose bytes are no image) or `no_image`."""
    feedback = response.prompt_feedback
    blocked = _name(feedback.block_reason) if feedback is not None else None
    if blocked:
        raise ProviderError("safety_blocked", f"gemini blocked the request ({blocked})", retryable=False)
    if response.candidates is None and feedback is None:
        raise ProviderError(
            "bad_answer",
            "gemini answered without candidates or promptFeedback (not a generateContent answer)",
            retryable=True,
        )
    candidate = response.candidates[0] if response.candidates else None
    parts = candidate.content.parts if candidate is not None and candidate.content is not None else None
    texts: list[str] = []
    not_images: list[str] = []  # declared types of inline parts whose bytes are no image we know
    for part in parts or []:
        blob = part.inline_data
        if blob is not None and blob.data and not part.thought:
            declared = blob.mime_type or "none"
            sniffed = sniff_mime(blob.data)
            if sniffed is not None:
                if sniffed != declared:
                    log.info("gemini declared %s for an image part whose bytes are %s", declared[:60], sniffed)
                return ImageInput(blob.data, sniffed)
            not_images.append(declared[:60])
        if part.text:
            texts.append(part.text)
    finish = _name(candidate.finish_reason) if candidate is not None else None
    if finish in SAFETY_FINISH_REASONS:
        raise ProviderError("safety_blocked", f"gemini refused to generate the image ({finish})", retryable=False)
    if not_images:
        raise ProviderError(
            "bad_answer",
            f"gemini answered with inline data that is no image by its bytes (declared {', '.join(not_images)})",
            retryable=True,
        )
    said = scrub(" ".join(texts).strip(), secrets)[:200]
    message = f"gemini answered without an image (finishReason {finish or 'none'})" + (f": {said}" if said else "")
    raise ProviderError("no_image", message, retryable=True)


# Models the SDK validates answers into; a ValidationError titled otherwise is about our request, not the answer.
_ANSWER_MODELS = frozenset({"GenerateContentResponse", "File", "ListFilesResponse"})


def answer_error(exc: BaseException, secrets: list[str]) -> ProviderError | None:
    """`bad_answer` (retryable) when `exc` is the SDK failing to read a successful answer — a body that is not
    JSON (HTML, truncated) or JSON that is not the answer's shape — else None (the exception is not about an
    answer: let it propagate)."""
    from google.genai import errors  # here, not at import: see the module docstring

    if isinstance(exc, json.JSONDecodeError):
        doc = exc.doc if isinstance(exc.doc, str) else repr(exc.doc)
        start = scrub(doc[:60], secrets)
        return ProviderError(
            "bad_answer", f"gemini answered with a body that is not JSON ({exc.msg}): {start!r}", retryable=True
        )
    if isinstance(exc, errors.UnknownApiResponseError):
        return ProviderError("bad_answer", "gemini answered with a body that is not JSON", retryable=True)
    if isinstance(exc, pydantic.ValidationError) and exc.title in _ANSWER_MODELS:
        detail = "invalid"
        if exc.error_count():
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "the body"
            detail = scrub(f"{where}: {first['msg']}", secrets)[:200]
        return ProviderError(
            "bad_answer", f"gemini answered with JSON that is not a {exc.title} ({detail})", retryable=True
        )
    return None


def usage(response: types.GenerateContentResponse) -> tuple[int | None, int | None]:
    """(promptTokenCount, candidatesTokenCount) from usageMetadata, when reported."""
    meta = response.usage_metadata
    if meta is None:
        return None, None
    return meta.prompt_token_count, meta.candidates_token_count


def call_cost(pricing: dict[str, Any], prompt_tokens: int | None, output_tokens: int | None) -> float:
    """Token-priced cost when usage is known, else the catalog's flat `per_image` price."""
    if prompt_tokens is not None and output_tokens is not None and "input_per_million_tokens" in pricing:
        cost = prompt_tokens * float(pricing["input_per_million_tokens"]) / 1e6
        cost += output_tokens * float(pricing.get("output_per_million_tokens", 0)) / 1e6
        return round(cost, 6)
    return float(pricing.get("per_image", 0.0))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
PACIFIC = ZoneInfo("America/Los_Angeles")
QuotaScope = Literal["minute", "day"]


def next_daily_reset(now: datetime) -> datetime:
    """When Gemini's per-day quotas next reset, in UTC: the next midnight Pacific time (rate-limits doc).

    Midnight always exists in America/Los_Angeles (the DST changes happen at 02:00), so this is 08:00 UTC under
    PST and 07:00 UTC under PDT, of the day after `now`'s Pacific date. A naive `now` is taken as UTC."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    local_date = now.astimezone(PACIFIC).date()
    return datetime.combine(local_date + timedelta(days=1), time(0), tzinfo=PACIFIC).astimezone(UTC)


@dataclass(frozen=True)
class QuotaViolation:
    """One `google.rpc.QuotaFailure.Violation` of a 429 body."""

    quota_id: str | None = None  # "GenerateRequestsPerDayPerProjectPerModel"
    metric: str | None = None  # "generativelanguage.googleapis.com/generate_requests_per_model_per_day"
    limit: int | None = None  # quotaValue
    dimensions: dict[str, str] = field(default_factory=dict)  # {"model": ..., "location": ...}

    @property
    def scope(self) -> QuotaScope | None:
        """`day` or `minute` as the quota's id (else its metric) names its window; None when neither says."""
        for name in (self.quota_id, self.metric):
            flat = re.sub(r"[^a-z]", "", (name or "").lower())
            if "perday" in flat:
                return "day"
            if "perminute" in flat:
                return "minute"
        return None

    def describe(self) -> str:
        """`GenerateRequestsPerDayPerProjectPerModel (metric ..., limit 2000, location global, model ...)`."""
        extra: list[str] = []
        if self.metric and self.quota_id:
            extra.append(f"metric {self.metric}")
        if self.limit is not None:
            extra.append(f"limit {self.limit}")
        extra.extend(f"{key} {value}" for key, value in sorted(self.dimensions.items()))
        name = self.quota_id or self.metric or "an unnamed quota"
        return name + (f" ({', '.join(extra)})" if extra else "")


def retry_after(err: errors.APIError) -> float | None:
    """The server's hint: the `Retry-After` header (seconds), else RetryInfo.retryDelay ("31s") in the body."""
    headers = getattr(err.response, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    header = retry_hint_seconds(value)
    if header is not None:
        return header
    for detail in _details(err):
        match = _DURATION.match(str(_get(detail, "retryDelay") or ""))
        if match:
            return retry_hint_seconds(match.group(1))
    return None


def _details(err: errors.APIError) -> list[dict[str, Any]]:
    body = err.details if isinstance(err.details, dict) else {}
    inner = body.get("error", body)
    details = inner.get("details") if isinstance(inner, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _get(obj: dict[str, Any], camel: str) -> Any:
    """A proto-JSON field by its lowerCamelCase name, else its snake_case name."""
    if camel in obj:
        return obj[camel]
    return obj.get(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel))


def _int(value: Any) -> int | None:
    try:
        return int(value)  # int64 travels as a JSON string
    except (TypeError, ValueError):
        return None


def quota_violations(err: errors.APIError) -> list[QuotaViolation]:
    """The violations of every `google.rpc.QuotaFailure` in the error body's details."""
    found: list[QuotaViolation] = []
    for detail in _details(err):
        if not str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure"):
            continue
        violations = detail.get("violations")
        for v in violations if isinstance(violations, list) else []:
            if not isinstance(v, dict):
                continue
            dims = _get(v, "quotaDimensions")
            found.append(
                QuotaViolation(
                    quota_id=str(_get(v, "quotaId")) if _get(v, "quotaId") else None,
                    metric=str(_get(v, "quotaMetric")) if _get(v, "quotaMetric") else None,
                    limit=_int(_get(v, "quotaValue")),
                    dimensions={str(k): str(val) for k, val in dims.items()} if isinstance(dims, dict) else {},
                )
            )
    return found


def quota_error(err: errors.APIError, message: str, now: datetime, secrets: list[str]) -> ProviderError:
    """A 429: `quota_exhausted` until the next daily reset when a per-day quota is full, else `rate_limited`.
    `message` is the (scrubbed) error message, used when the body names no quota."""
    violations = quota_violations(err)
    daily = [v for v in violations if v.scope == "day"]
    if daily:
        resets_at = next_daily_reset(now)
        names = scrub("; ".join(v.describe() for v in daily), secrets)
        return ProviderError(
            "quota_exhausted",
            f"gemini daily quota exhausted: {names}; it resets at {resets_at.isoformat()} (midnight Pacific time)",
            retryable=False,
            quota_scope="day",
            quota_id=daily[0].quota_id or daily[0].metric,
            resets_at=resets_at,
        )
    delay = retry_after(err)
    named = next((v for v in violations if v.scope == "minute"), violations[0] if violations else None)
    return ProviderError(
        "rate_limited",
        f"gemini rate limit: {scrub(named.describe(), secrets) if named is not None else message}",
        retryable=True,
        retry_after=delay,
        quota_scope="minute",
        quota_id=(named.quota_id or named.metric) if named is not None else None,
        resets_at=now + timedelta(seconds=delay) if delay is not None else None,
    )


def error_from_api(err: errors.APIError, secrets: list[str], now: datetime | None = None) -> ProviderError:
    """Map an SDK APIError (HTTP status + Google error body) to a typed provider error (`now`: UTC, for 429s)."""
    code = int(err.code or 0)
    message = scrub(str(err.message or err.status or f"HTTP {code}"), secrets)[:300]
    reasons = {str(d.get("reason")) for d in _details(err)}
    if code in (401, 403) or "API_KEY_INVALID" in reasons:
        return ProviderError("auth_failed", f"gemini rejected the API key: {message}", retryable=False)
    if code == 429:
        return quota_error(err, message, now if now is not None else datetime.now(UTC), secrets)
    if code >= 500 or code == 408:
        return ProviderError("provider_unavailable", f"gemini error {code}: {message}", retryable=True)
    return ProviderError("bad_request", f"gemini rejected the request ({code}): {message}", retryable=False)
