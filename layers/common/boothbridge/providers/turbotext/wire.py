"""Turbotext's wire format (https://www.turbotext.ru/photo_ai/docs/info and the per-method pages), no I/O.

Every call is `POST {base}/{method}`, form-encoded, `Authorization: Bearer {APIKEY}`:

- `do=create_queue` + the method's fields -> `{"success":true,"queueid":N}`;
  with `webhook=<url>` among the fields -> `{"success":true,"asyncid":N}`, and later Turbotext POSTs the
  result JSON (the same format as `get_result`'s answer) to that URL;
- `do=get_result&queueid=N` -> `{"action":"reconnect"}` while the work is not done, then
  `{"success":true,"error":"","data":{...},"uploaded_image":"<url of the result>"}`.

An error answer is `{"success":false,"error":"<text>"}` (the docs show `"error":""` on success and list no
error codes). Which operation maps to which method and fields is catalog data
(`operations.*.provider_overrides.turbotext`), resolved here into form values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from boothbridge.providers.base import retry_hint_seconds

# The catalog's name for the booth photo in a field mapping; names ending in `_media_id` are slot templates.
BOOTH_PHOTO = "ingest_media"
MEDIA_SUFFIX = "_media_id"

# Words that mark an error answer as a credentials problem (the docs list no error codes; HTTP 401/403 is the
# primary signal, this catches a 200 answer that says the key is wrong or the plan has no API access).
_AUTH_WORDS = ("api key", "apikey", "api_key", "unauthori", "authoriz", "authentic", "bearer", "авториз", "ключ")


@dataclass(frozen=True)
class MethodSpec:
    """One operation's Turbotext call: the method (URL path) and `form field -> source` pairs, where the
    source is `ingest_media`, a `*_media_id` template, or a slot setting."""

    method: str
    fields: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Answer:
    """A parsed Turbotext answer. `kind`: queued (queueid), parked (asyncid), reconnect, result, error."""

    kind: Literal["queued", "parked", "reconnect", "result", "error"]
    ref: str | None = None  # queueid or asyncid
    image_url: str | None = None  # result only; None = a result without an image
    error: str | None = None  # error only: the provider's own message


class WireError(ValueError):
    """The answer is not in Turbotext's format at all."""


def method_spec(override: Any) -> MethodSpec:
    """`provider_overrides.turbotext` of an operation -> MethodSpec (WireError if malformed)."""
    if not isinstance(override, dict) or not isinstance(override.get("method"), str):
        raise WireError("the operation has no Turbotext method")
    fields = override.get("fields") or {}
    if not isinstance(fields, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
        raise WireError("the operation's Turbotext fields are malformed")
    method = override["method"]
    if not method.replace("_", "").isalnum():
        raise WireError(f"bad Turbotext method name {method!r}")
    return MethodSpec(method, tuple(fields.items()))


def form_value(value: Any) -> str:
    """A setting as Turbotext expects it in a form: booleans as `True`/`False` (the docs' `face_restore -
    True/False`), numbers and text as their plain string."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _truthy(value: Any) -> bool:
    # JSON gives booleans; a form-encoded callback gives strings.
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _image_url(data: dict[str, Any]) -> str | None:
    """`uploaded_image`; failing that an absolute URL in `data.image[0]` (the deepfake_photo example shows one)."""
    candidates: list[Any] = [data.get("uploaded_image")]
    inner = data.get("data")
    if isinstance(inner, dict) and isinstance(inner.get("image"), list) and inner["image"]:
        candidates.append(inner["image"][0])
    for url in candidates:
        if isinstance(url, str) and url.strip().lower().startswith(("http://", "https://")):
            return url.strip()
    return None


def parse_answer(data: Any) -> Answer:
    """Classify a decoded answer (create_queue, get_result or a webhook delivery)."""
    if not isinstance(data, dict):
        raise WireError("the answer is not a JSON object")
    if str(data.get("action", "")).lower() == "reconnect":
        return Answer("reconnect")
    if "success" not in data:
        raise WireError("the answer has neither `success` nor `action`")
    if not _truthy(data["success"]):
        message = data.get("error") or data.get("message") or "the provider reported an error"
        return Answer("error", error=str(message)[:500])
    if data.get("asyncid") not in (None, ""):
        return Answer("parked", ref=str(data["asyncid"]))
    url = _image_url(data)
    if url is None and data.get("queueid") not in (None, "") and "data" not in data:
        return Answer("queued", ref=str(data["queueid"]))
    return Answer("result", image_url=url)


def is_auth_error(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in _AUTH_WORDS)


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds (the HTTP-date form is rare for APIs and treated as absent; see
    `retry_hint_seconds` for the bounds)."""
    return retry_hint_seconds(value)
