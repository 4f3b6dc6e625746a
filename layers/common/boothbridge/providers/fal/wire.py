"""fal's queue protocol as data: the request body of each operation, the queue URLs, the answers, the webhook body
and the message its signature covers. No I/O (the adapter does the HTTP, `fal.signature` the key check).

Sources (read 2026-11):
- Queue API, https://docs.fal.ai/documentation/model-apis/inference/queue and https://fal.ai/docs/inference-api/
  queue/{status,cancel}: `POST {queue}/{model_id}` (JSON input, `Authorization: Key <FAL_KEY>`, optional
  `?fal_webhook=<url>`) answers `{"request_id","response_url","status_url","cancel_url",...}`;
  `GET {queue}/{app}/requests/{id}/status` -> `{"status": "IN_QUEUE"|"IN_PROGRESS"|"COMPLETED", "queue_position",
  "logs", "error"?}`; `GET {queue}/{app}/requests/{id}` -> the model's output JSON;
  `PUT {queue}/{app}/requests/{id}/cancel` -> 202 `CANCELLATION_REQUESTED` / 400 `ALREADY_COMPLETED`.
  `{app}` is the model id WITHOUT its endpoint sub-path ("The model app name ... Do not add the endpoint path"):
  `fal-ai/luma-photon/reframe` submits to that path but is polled under `fal-ai/luma-photon` (`app_id`).
- Webhooks, https://docs.fal.ai/model-apis/model-endpoints/webhooks: body `{"request_id", "gateway_request_id",
  "status": "OK"|"ERROR", "payload": {...}|null, "error"?, "payload_error"?}`; signed with ED25519 over
  `request_id \\n user_id \\n timestamp \\n sha256_hex(raw body)` (headers `X-Fal-Webhook-Request-Id`,
  `-User-Id`, `-Timestamp`, `-Signature` in hex), keys from the JWKS at
  `https://rest.alpha.fal.ai/.well-known/jwks.json`, timestamp within +-5 minutes.
- Model inputs and outputs: each model's page on fal.ai (llms.txt / API tab). Images come back as
  `{"images": [{"url", "content_type", "width", "height"}], "seed", "has_nsfw_concepts", "prompt", "timings"}` or
  `{"image": {...}}`; video as `{"video": {"url", ...}}`; the FLUX Pro trainer as `{"finetune_id": ...}`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

OUTPUT_KINDS = ("image", "images", "video", "finetune")
# Where an input image goes: the booth photo (or a task's first input), or the photo followed by every further
# image of the request (`ProviderRequest.media`, in key order) as a list.
PHOTO = "photo"
PHOTO_AND_MEDIA = "photo+media"
# A model id as fal spells it: owner/app[/endpoint path], lower case, no `..` (it becomes a URL path).
MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9._-]*)+$")
STATUSES = ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
SIGNATURE_HEADERS = (
    "x-fal-webhook-request-id",
    "x-fal-webhook-user-id",
    "x-fal-webhook-timestamp",
    "x-fal-webhook-signature",
)


class WireError(ValueError):
    """An answer (or a catalog entry) that is not in the documented shape."""


@dataclass(frozen=True)
class OperationSpec:
    """One operation's `provider_overrides.fal` entry: the default `model` id, where the images go (`images`: fal
    field -> `photo` | `photo+media`), which settings are sent as they are (`inputs`), what comes back (`output`:
    image | images | video | finetune) and the `price` (`per_image`, `per_second` of video, or `per_run`)."""

    model: str
    images: tuple[tuple[str, str], ...]
    inputs: tuple[str, ...]
    output: str
    price: dict[str, float]

    def cost(self, images: int = 0, seconds: float = 0.0) -> float:
        """The catalog price of a result with `images` images, or a video of `seconds` s, or one run."""
        return round(
            self.price.get("per_image", 0.0) * images
            + self.price.get("per_second", 0.0) * seconds
            + self.price.get("per_run", 0.0),
            6,
        )


def operation_spec(entry: Any) -> OperationSpec:
    """Parse `provider_overrides.fal`; raises WireError when it is missing or malformed."""
    if not isinstance(entry, dict):
        raise WireError("no fal entry in the operation's provider_overrides")
    model, images, inputs, output = (
        entry.get("model"),
        entry.get("images", {}),
        entry.get("inputs", []),
        entry.get("output"),
    )
    if not isinstance(model, str) or not MODEL_ID.match(model):
        raise WireError(f"bad model id {model!r}")
    if not isinstance(images, dict) or any(v not in (PHOTO, PHOTO_AND_MEDIA) for v in images.values()):
        raise WireError("images must map fal fields to 'photo' or 'photo+media'")
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise WireError("inputs must be a list of settings names")
    if output not in OUTPUT_KINDS:
        raise WireError(f"output must be one of {OUTPUT_KINDS}")
    price = {str(k): float(v) for k, v in (entry.get("price") or {}).items()}
    return OperationSpec(model, tuple(images.items()), tuple(inputs), str(output), price)


def model_for(spec: OperationSpec, settings: dict[str, Any]) -> str:
    """The model id a call uses: the settings' `model_id` (checked like the catalog's), else the default."""
    chosen = settings.get("model_id") or spec.model
    if not isinstance(chosen, str) or not MODEL_ID.match(chosen):
        raise WireError(f"bad model id {chosen!r}")
    return chosen


def app_id(model: str) -> str:
    """The app a model id belongs to (`owner/app`): where its requests' status, result and cancel URLs live."""
    return "/".join(model.split("/")[:2])


def submit_url(queue: str, model: str, webhook_url: str | None) -> str:
    """`{queue}/{model}`, with `?fal_webhook=` when a webhook is offered."""
    url = f"{queue.rstrip('/')}/{model}"
    return f"{url}?{urlencode({'fal_webhook': webhook_url})}" if webhook_url else url


def request_url(queue: str, model: str, request_id: str, what: str = "") -> str:
    """`{queue}/{app}/requests/{id}[/status|/cancel]` (see `app_id`)."""
    url = f"{queue.rstrip('/')}/{app_id(model)}/requests/{quote(request_id, safe='')}"
    return f"{url}/{what}" if what else url


def data_uri(data: bytes, mime: str) -> str:
    """An image as a `data:` URI (fal accepts these wherever it takes an image URL)."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def build_input(
    spec: OperationSpec, settings: dict[str, Any], defaults: dict[str, Any], images: dict[str, str | list[str]]
) -> dict[str, Any]:
    """The JSON body: each `inputs` setting (the slot's or task's value, else the schema default; unset and empty
    values are left out), then the image fields (`images`: fal field -> URL or list of URLs)."""
    body: dict[str, Any] = {}
    for name in spec.inputs:
        value = settings.get(name, defaults.get(name))
        if value is not None and value != "":
            body[name] = value
    body.update(images)
    return body


@dataclass(frozen=True)
class Submitted:
    request_id: str
    status_url: str | None = None
    response_url: str | None = None
    cancel_url: str | None = None


def parse_submit(data: Any) -> Submitted:
    if not isinstance(data, dict) or not isinstance(data.get("request_id"), str) or not data["request_id"]:
        raise WireError("the submit answer has no request_id")

    def url(name: str) -> str | None:
        value = data.get(name)
        return value if isinstance(value, str) and value else None

    return Submitted(data["request_id"], url("status_url"), url("response_url"), url("cancel_url"))


@dataclass(frozen=True)
class Status:
    status: str
    queue_position: int | None = None
    error: str | None = None


def parse_status(data: Any) -> Status:
    if not isinstance(data, dict) or data.get("status") not in STATUSES:
        raise WireError("the status answer has no known status")
    position = data.get("queue_position")
    error = data.get("error")
    return Status(
        data["status"],
        position if isinstance(position, int) else None,
        str(error) if error else None,
    )


@dataclass(frozen=True)
class Output:
    """What a finished request produced: media URLs in fal's order (`urls`), the video's length in seconds when
    known, the fine-tune id, and the rest of the JSON (`data`: seed, timings, NSFW flags, prompt...)."""

    urls: tuple[str, ...]
    data: dict[str, Any]
    seconds: float = 0.0
    finetune_id: str | None = None


def parse_output(kind: str, payload: Any, duration: Any = None) -> Output:
    """The model's output JSON as `Output`; raises WireError when the promised media or id is missing."""
    if not isinstance(payload, dict):
        raise WireError("the result is not a JSON object")
    data = {k: v for k, v in payload.items() if k not in ("images", "image", "video")}
    if kind == "finetune":
        ref = payload.get("finetune_id")
        if not isinstance(ref, str) or not ref:
            raise WireError("the trainer's result has no finetune_id")
        return Output((), data, finetune_id=ref)
    if kind == "images":
        files = payload.get("images")
        files = files if isinstance(files, list) else [payload.get("image")]
    elif kind == "image":
        files = [payload.get("image")] if payload.get("image") is not None else payload.get("images") or []
    else:
        files = [payload.get("video")]
    urls = tuple(f["url"] for f in files if isinstance(f, dict) and isinstance(f.get("url"), str) and f["url"])
    if not urls:
        raise WireError(f"the result carries no {'video' if kind == 'video' else 'image'} URL")
    seconds = 0.0
    if kind == "video":
        try:
            seconds = float(str(duration if duration is not None else payload.get("duration", 0)))
        except ValueError:
            seconds = 0.0
    return Output(urls, data, seconds=seconds)


@dataclass(frozen=True)
class WebhookBody:
    request_id: str
    ok: bool
    payload: Any
    error: str | None


def parse_webhook(data: Any) -> WebhookBody:
    if not isinstance(data, dict) or not isinstance(data.get("request_id"), str):
        raise WireError("the webhook body has no request_id")
    status = data.get("status")
    if status not in ("OK", "ERROR"):
        raise WireError("the webhook body has no status OK or ERROR")
    error = data.get("error") or data.get("payload_error")
    if status == "OK" and data.get("payload") is None:
        error = error or "the result could not be delivered"
        return WebhookBody(data["request_id"], False, None, str(error))
    return WebhookBody(data["request_id"], status == "OK", data.get("payload"), str(error) if error else None)


def error_detail(data: Any) -> str:
    """A short human text from fal's error JSON (`{"detail": "..."}` or FastAPI's `{"detail": [{"msg"...}]}`)."""
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, list):
        parts = [f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail if isinstance(d, dict)]
        return "; ".join(parts)[:300]
    if detail:
        return str(detail)[:300]
    return ""


def signature_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """What fal signs: the request id, user id, timestamp and the body's sha256 in hex, joined by newlines."""
    return "\n".join([request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()]).encode()


def is_video(data: bytes) -> bool:
    """An ISO-BMFF (MP4) file: its first box is `ftyp` (`....ftyp`), with a brand that is not a HEIF image."""
    return len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] not in (b"heic", b"heix", b"mif1", b"msf1")
