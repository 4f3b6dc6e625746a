"""Gemini request planning and response reading, free of I/O: parts, inline-vs-Files decisions, token
estimates, finish reasons, error mapping and cost. Used by `boothbridge.providers.gemini`."""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Any

from google.genai import errors, types
from PIL import Image

from boothbridge.providers import local_ops
from boothbridge.providers.base import ImageInput, ProviderError, ProviderRequest

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
    output_format: str | None  # "jpeg"/"png" when the slot asks for one
    output_quality: int


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


def _prepare_image(image: ImageInput, what: str) -> tuple[ImageInput, int]:
    """The image in a MIME type Gemini accepts (others are converted to PNG) and its token estimate."""
    try:
        with Image.open(io.BytesIO(image.data)) as opened:
            width, height = opened.size
            if image.mime in SUPPORTED_INPUT_MIME:
                return image, image_tokens(width, height)
            data, mime = local_ops.encode(local_ops.decode(image.data), "png", 100)
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
    inputs = [_prepare_image(request.source, "photo")]
    if second is not None:
        if second not in request.media:
            raise ProviderError("template_missing", f"the slot's image {second} is missing", retryable=False)
        inputs.append(_prepare_image(request.media[second], "slot image"))
    uploads = choose_uploads([len(img.data) for img, _ in inputs], len(prompt.encode()), limit)
    images = tuple(PlannedImage(img, i in uploads, tokens) for i, (img, tokens) in enumerate(inputs))
    output = s.get("output") or {}
    if not isinstance(output, dict):
        raise _settings_error("output must be an object")
    fmt = output.get("format")
    if fmt is not None and fmt not in ("jpeg", "png"):
        raise _settings_error(f"unsupported output format {fmt!r}")
    aspect = s.get("aspect_ratio")
    return CallPlan(
        model=str(s.get("model") or DEFAULT_MODEL),
        images=images,
        prompt=prompt,
        aspect_ratio=str(aspect) if aspect else None,
        tokens=sum(img.tokens for img in images) + math.ceil(len(prompt) / 4),
        output_format=fmt,
        output_quality=int(output.get("quality", 92)),
    )


def generation_config(plan: CallPlan) -> types.GenerateContentConfig:
    """Image-only output (`responseModalities: ["IMAGE"]`), plus `imageConfig.aspectRatio` when the slot sets one."""
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
    """The first image part of the first candidate, or `safety_blocked` / `no_image`."""
    feedback = response.prompt_feedback
    blocked = _name(feedback.block_reason) if feedback is not None else None
    if blocked:
        raise ProviderError("safety_blocked", f"gemini blocked the request ({blocked})", retryable=False)
    candidate = response.candidates[0] if response.candidates else None
    parts = candidate.content.parts if candidate is not None and candidate.content is not None else None
    texts: list[str] = []
    for part in parts or []:
        blob = part.inline_data
        if blob is not None and blob.data and (blob.mime_type or "").startswith("image/") and not part.thought:
            return ImageInput(blob.data, blob.mime_type or "image/png")
        if part.text:
            texts.append(part.text)
    finish = _name(candidate.finish_reason) if candidate is not None else None
    if finish in SAFETY_FINISH_REASONS:
        raise ProviderError("safety_blocked", f"gemini refused to generate the image ({finish})", retryable=False)
    said = scrub(" ".join(texts).strip(), secrets)[:200]
    message = f"gemini answered without an image (finishReason {finish or 'none'})" + (f": {said}" if said else "")
    raise ProviderError("no_image", message, retryable=True)


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


def retry_after(err: errors.APIError) -> float | None:
    """The server's hint: the `Retry-After` header (seconds), else RetryInfo.retryDelay ("31s") in the body."""
    headers = getattr(err.response, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    if value is not None:
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
    for detail in _details(err):
        match = _DURATION.match(str(detail.get("retryDelay", "")))
        if match:
            return float(match.group(1))
    return None


def _details(err: errors.APIError) -> list[dict[str, Any]]:
    body = err.details if isinstance(err.details, dict) else {}
    inner = body.get("error", body)
    details = inner.get("details") if isinstance(inner, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def error_from_api(err: errors.APIError, secrets: list[str]) -> ProviderError:
    """Map an SDK APIError (HTTP status + Google error body) to a typed provider error."""
    code = int(err.code or 0)
    message = scrub(str(err.message or err.status or f"HTTP {code}"), secrets)[:300]
    reasons = {str(d.get("reason")) for d in _details(err)}
    if code in (401, 403) or "API_KEY_INVALID" in reasons:
        return ProviderError("auth_failed", f"gemini rejected the API key: {message}", retryable=False)
    if code == 429:
        return ProviderError(
            "rate_limited", f"gemini rate limit: {message}", retryable=True, retry_after=retry_after(err)
        )
    if code >= 500 or code == 408:
        return ProviderError("provider_unavailable", f"gemini error {code}: {message}", retryable=True)
    return ProviderError("bad_request", f"gemini rejected the request ({code}): {message}", retryable=False)


def finish_output(image: ImageInput, output_format: str | None, quality: int) -> ImageInput:
    """Re-encode only when the slot asks for another format, or the answer is neither JPEG nor PNG (CPU work)."""
    got = {"image/jpeg": "jpeg", "image/png": "png"}.get(image.mime)
    wanted = output_format or got or "jpeg"
    if wanted == got:
        return image
    try:
        data, mime = local_ops.encode(local_ops.decode(image.data), wanted, quality)
    except local_ops.UndecodableImageError as exc:
        raise ProviderError("no_image", "gemini answered with an undecodable image", retryable=True) from exc
    return ImageInput(data, mime)
