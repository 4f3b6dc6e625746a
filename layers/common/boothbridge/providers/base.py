"""The provider protocol: what the worker needs from an AI service adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ImageInput:
    """An image handed to a provider: its bytes and MIME type (`image/jpeg`, `image/png`, ...)."""

    data: bytes
    mime: str


@dataclass(frozen=True)
class ProviderRequest:
    """One call of one operation.

    `source` is the booth's photo; `media` holds the slot's template images resolved from the
    `*_media_id` settings (key = the settings field name, e.g. `template_media_id`); `timeout_sec` is
    what this attempt may take before the worker gives up on it.
    """

    job_id: str
    attempt: int
    operation_id: str
    settings: dict[str, Any]
    source: ImageInput
    media: dict[str, ImageInput] = field(default_factory=dict)
    timeout_sec: float = 48.0


@dataclass(frozen=True)
class ProviderResult:
    """The processed image and what the call cost (in the catalog's currency, 0 for offline work)."""

    image: ImageInput
    cost: float = 0.0


class ProviderError(Exception):
    """A typed provider failure.

    `retryable` tells the queue whether another attempt may succeed (network faults, 429, 5xx, an empty
    answer); `retry_after` is the provider's own hint in seconds, when it gave one.
    """

    def __init__(self, code: str, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


class Provider(Protocol):
    """An AI service adapter. `id` matches `providers[].id` in the catalog.

    `run` performs one attempt of `request.operation_id` and returns the image, or raises `ProviderError`.
    Implementations hold their HTTP clients for the life of the process and must not block the event loop
    (CPU work goes to a thread).
    """

    id: str

    async def run(self, request: ProviderRequest) -> ProviderResult: ...

    async def close(self) -> None: ...
