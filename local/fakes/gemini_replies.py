"""Scripted answers for the fake Gemini server (`local.fakes.gemini_server`), in the REST API's JSON shapes:
`candidates[].content.parts[].inlineData{mimeType,data}`, `finishReason`, `promptFeedback.blockReason`,
`usageMetadata`, and the Google error format `{"error": {"code", "message", "status", "details"}}` with
`google.rpc.RetryInfo.retryDelay` / `google.rpc.ErrorInfo.reason` / `google.rpc.QuotaFailure.violations` details
(429 quota refusals as Gemini sends them: QuotaFailure, Help, RetryInfo).

Also answers that are wrong on the wire: a raw body (HTML, truncated JSON) with any status and Content-Type, a
body cut off mid-transfer, and image parts whose bytes are not what their `mimeType` says."""

from __future__ import annotations

import base64
import io
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}


def result_png(color: tuple[int, int, int] = (10, 200, 30), size: tuple[int, int] = (48, 32)) -> bytes:
    """A small PNG the fake answers with (distinct from any test photo)."""
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class Reply:
    """One scripted answer: HTTP status, JSON body, extra headers, and a delay before answering.

    `raw` replaces the JSON body with these exact bytes (sent as `content_type`); `cut` sends only the first `cut`
    bytes of the body after announcing its full Content-Length, then closes the connection."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None
    content_type: str = "application/json; charset=UTF-8"
    cut: int | None = None

    def payload(self) -> bytes:
        return self.raw if self.raw is not None else json.dumps(self.body).encode()


def image_reply(
    image: bytes | None = None, mime: str = "image/png", *, usage: bool = True, delay: float = 0.0
) -> Reply:
    """A successful edit: one image part (inlineData, base64) and usage metadata."""
    data = image if image is not None else result_png()
    body: dict[str, Any] = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"inlineData": {"mimeType": mime, "data": _b64(data)}}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "modelVersion": "gemini-2.5-flash-image",
        "responseId": uuid.uuid4().hex[:20],
    }
    if usage:
        body["usageMetadata"] = {"promptTokenCount": 1000, "candidatesTokenCount": 1290, "totalTokenCount": 2290}
    return Reply(200, body, delay=delay)


def no_image_reply(text: str = "I can't edit this image.") -> Reply:
    """HTTP 200 without an image part: `finishReason: NO_IMAGE` (the answer Gemini sometimes gives)."""
    candidate = {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "NO_IMAGE", "index": 0}
    return Reply(200, {"candidates": [candidate], "usageMetadata": {"promptTokenCount": 900, "totalTokenCount": 900}})


def safety_reply(finish_reason: str = "IMAGE_SAFETY") -> Reply:
    """A candidate stopped by a safety filter (no content)."""
    return Reply(200, {"candidates": [{"finishReason": finish_reason, "index": 0}]})


def prompt_blocked_reply(block_reason: str = "SAFETY") -> Reply:
    """The prompt itself blocked: no candidates, `promptFeedback.blockReason`."""
    return Reply(200, {"promptFeedback": {"blockReason": block_reason}, "usageMetadata": {"promptTokenCount": 800}})


def error_reply(
    status: int,
    message: str = "error",
    *,
    retry_after: float | None = None,
    retry_delay: str | None = None,
    reason: str | None = None,
    delay: float = 0.0,
) -> Reply:
    """A Google API error body; optional `Retry-After` header, RetryInfo.retryDelay and ErrorInfo.reason."""
    details: list[dict[str, Any]] = []
    if retry_delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    if reason is not None:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "googleapis.com"}
        )
    error: dict[str, Any] = {"code": status, "message": message, "status": _STATUS.get(status, "INTERNAL")}
    if details:
        error["details"] = details
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
    return Reply(status, {"error": error}, headers, delay)


GEMINI_MODEL = "gemini-2.5-flash-image"
RATE_LIMITS_URL = "https://ai.google.dev/gemini-api/docs/rate-limits"


def quota_violation(
    quota_id: str = "GenerateRequestsPerDayPerProjectPerModel",
    metric: str = "generativelanguage.googleapis.com/generate_requests_per_model_per_day",
    value: int | None = 2000,
    dimensions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One `google.rpc.QuotaFailure.Violation` (proto JSON: lowerCamelCase, int64 as a string)."""
    violation: dict[str, Any] = {
        "quotaMetric": metric,
        "quotaId": quota_id,
        "quotaDimensions": dimensions if dimensions is not None else {"location": "global", "model": GEMINI_MODEL},
    }
    if value is not None:
        violation["quotaValue"] = str(value)
    return violation


def quota_reply(*violations: dict[str, Any], retry_delay: str | None = "47s") -> Reply:
    """A 429 RESOURCE_EXHAUSTED as Gemini sends it: the quota text, then QuotaFailure, Help and RetryInfo."""
    lines = [
        "You exceeded your current quota, please check your plan and billing details. For more information on "
        f"this error, head to: {RATE_LIMITS_URL}. To monitor your current usage, head to: "
        "https://ai.dev/usage?tab=rate-limit. "
    ]
    for v in violations:
        limit = f", limit: {v['quotaValue']}" if "quotaValue" in v else ""
        model = v.get("quotaDimensions", {}).get("model")
        lines.append(f"* Quota exceeded for metric: {v['quotaMetric']}{limit}" + (f", model: {model}" if model else ""))
    if retry_delay is not None:
        lines.append(f"Please retry in {retry_delay}.")
    details: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": list(violations)},
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{"description": "Learn more about Gemini API quotas", "url": RATE_LIMITS_URL}],
        },
    ]
    if retry_delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    error = {"code": 429, "message": "\n".join(lines), "status": "RESOURCE_EXHAUSTED", "details": details}
    return Reply(429, {"error": error})


def daily_quota_reply(retry_delay: str = "47s") -> Reply:
    """The field report: the per-model per-day request quota is full (and a misleading 47 s RetryInfo)."""
    return quota_reply(quota_violation(), retry_delay=retry_delay)


def daily_token_quota_reply(retry_delay: str = "13s") -> Reply:
    """A per-project per-day input-token quota is full (no model dimension: it counts the whole project)."""
    violation = quota_violation(
        quota_id="GenerateContentInputTokensPerProjectPerDay",
        metric="generativelanguage.googleapis.com/generate_content_input_token_count_per_project_per_day",
        value=5_000_000,
        dimensions={"location": "global"},
    )
    return quota_reply(violation, retry_delay=retry_delay)


def minute_quota_reply(retry_delay: str = "2s") -> Reply:
    """The per-model per-minute request quota is full: worth a short wait."""
    violation = quota_violation(
        quota_id="GenerateRequestsPerMinutePerProjectPerModel",
        metric="generativelanguage.googleapis.com/generate_requests_per_model",
        value=500,
    )
    return quota_reply(violation, retry_delay=retry_delay)


def raw_reply(status: int, body: bytes, content_type: str = "application/json; charset=UTF-8") -> Reply:
    """These exact bytes as the body."""
    return Reply(status, {}, raw=body, content_type=content_type)


HTML_PAGE = (
    b"<!DOCTYPE html>\n<html lang=en><meta charset=utf-8><title>Error 502 (Server Error)!!1</title>"
    b"<p><b>502.</b> <ins>That\xe2\x80\x99s an error.</ins><p>The server encountered a temporary error. "
    b"<ins>That\xe2\x80\x99s all we know.</ins></html>\n"
)


def html_reply(status: int = 200) -> Reply:
    """An HTML page (what a proxy or load balancer answers) instead of JSON, with the given status."""
    return raw_reply(status, HTML_PAGE, "text/html; charset=UTF-8")


def truncated_json_reply() -> Reply:
    """A 200 whose JSON stops in the middle of the image's base64 (the body as sent is complete HTTP)."""
    whole = json.dumps(image_reply().body).encode()
    return raw_reply(200, whole[: whole.index(b'"data": "') + 40])


def cut_reply() -> Reply:
    """A 200 that announces its whole Content-Length, sends half the body, and closes the connection."""
    reply = image_reply()
    reply.cut = len(reply.payload()) // 2
    return reply


def wrong_shape_reply() -> Reply:
    """A 200 with JSON that is not a GenerateContentResponse (fields of the wrong types)."""
    return Reply(200, {"candidates": "none today", "usageMetadata": 5})


def not_an_answer_reply() -> Reply:
    """A 200 with a JSON value that is not an object at all."""
    return raw_reply(200, b'["not", "an", "answer"]')


def sample_jpeg(color: tuple[int, int, int] = (200, 60, 20), size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def mislabeled_jpeg_reply(image: bytes | None = None) -> Reply:
    """An inline image part whose `mimeType` says image/png but whose bytes are a JPEG."""
    return image_reply(image if image is not None else sample_jpeg(), mime="image/png")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAKE_PNG = PNG_SIGNATURE + b"This is not an image, only text after a PNG signature.\n"


def fake_png_reply() -> Reply:
    """An inline "PNG" that is only the 8-byte PNG signature followed by text."""
    return image_reply(FAKE_PNG, mime="image/png")


def not_an_image_reply() -> Reply:
    """An inline part declared image/png whose bytes are no image at all."""
    return image_reply(b"<html>no image here</html>", mime="image/png")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
