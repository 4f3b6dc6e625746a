"""Scripted answers for the fake Gemini server (`tests.fakes.gemini_server`), in the REST API's JSON shapes:
`candidates[].content.parts[].inlineData{mimeType,data}`, `finishReason`, `promptFeedback.blockReason`,
`usageMetadata`, and the Google error format `{"error": {"code", "message", "status", "details"}}` with
`google.rpc.RetryInfo.retryDelay` / `google.rpc.ErrorInfo.reason` details."""

from __future__ import annotations

import base64
import io
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
    """One scripted answer: HTTP status, JSON body, extra headers, and a delay before answering."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
