"""The provider protocol: what the worker needs from an AI service adapter."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ImageInput:
    """An image in memory: its bytes and MIME type (`image/jpeg`, `image/png`, ...). What providers return, and
    what tests hand them; the worker hands a running job's images as `ImageFile` or `StoredImage` instead."""

    data: bytes
    mime: str

    @property
    def path(self) -> Path | None:
        """Always None: the bytes are in memory (`data`)."""
        return None

    @property
    def size(self) -> int:
        """The encoded size in bytes."""
        return len(self.data)

    async def read(self) -> bytes:
        """The bytes (no I/O)."""
        return self.data


@dataclass(frozen=True)
class ImageFile:
    """An image in a local file: the worker's spool file of a prepared input (its owner removes it when the
    attempt ends, whatever the outcome). `path` is for libraries that open files (Pillow, libvips); `read()` for
    a provider that needs the bytes, best only while it needs them. `size` in bytes."""

    path: Path
    mime: str
    size: int

    async def read(self) -> bytes:
        """The file's bytes, read in a worker thread. Raises OSError when the file is gone."""
        return await asyncio.to_thread(self.path.read_bytes)


@dataclass(frozen=True)
class StoredImage:
    """An image handed over as it is stored (nothing had to change at the image boundary): `read()` fetches the
    object's bytes from media storage each time it is called (the reader raises `ProviderError`, e.g.
    `source_expired`, when the object is gone). `key` is the storage key (for logs), `size` in bytes; `path` is
    None (the object may live in S3)."""

    key: str
    mime: str
    size: int
    reader: Callable[[], Awaitable[bytes]] = field(repr=False, compare=False)

    @property
    def path(self) -> Path | None:
        """None: reach the bytes through `read()`."""
        return None

    async def read(self) -> bytes:
        """The object's bytes, read from storage now."""
        return await self.reader()


# What a request carries: in memory, a spool file, or the stored object. Each has `mime`, `size`, `path` (a
# local file or None) and `async read() -> bytes`.
ImageSource = ImageInput | ImageFile | StoredImage


async def in_memory(image: ImageSource) -> ImageInput:
    """`image` with its bytes in memory (read now unless they already are), for a provider that must send them."""
    return image if isinstance(image, ImageInput) else ImageInput(await image.read(), image.mime)


# Registers an image as a temporary public link and returns its URL (for providers that fetch images by URL).
PublicLinker = Callable[[ImageSource], Awaitable[str]]


async def _no_public_links(image: ImageSource) -> str:
    raise ProviderError("public_links_unavailable", "this deployment cannot publish images", retryable=False)


@dataclass(frozen=True)
class ProviderRequest:
    """One call of one operation.

    `source` is the booth's photo (or a task's first input image; None for an operation that starts from a prompt
    alone, e.g. text-to-image or a fine-tune: `photo()` is the checked accessor); `media` holds the slot's template
    images resolved from the `*_media_id` settings (key = the settings field name, e.g. `template_media_id`);
    `timeout_sec` is what this attempt may take before the worker gives up on it. `public_url` publishes an image as a
    temporary public link (Turbotext downloads our images by URL). `webhook_url` is where an asynchronous
    provider may deliver this attempt's result (it carries a per-attempt secret), or None when the
    deployment has no public address for callbacks. `start_by` (a `time.monotonic()` value, None = no limit) is
    the latest moment a paid call of this attempt may start: one starting later could not end before the booth's
    answer is due (a provider that first waits, e.g. for a client-side quota window, gives up instead).
    `resume_ref` is the provider's id of work an earlier attempt of this step already submitted (the job's
    `provider_ref`: a parked job whose webhook never came, or whose poll ran out of time), or None: a provider
    that can poll it (fal) does so instead of submitting, and paying, again. `submitted`, when given, is awaited
    by such a provider with its id of the work as soon as the work is accepted (the job keeps it: an operator's
    cancel reaches it, a later attempt resumes it); it never raises.

    The worker hands the images as `ImageFile` or `StoredImage` (see `ImageSource`), so a job waiting at its
    provider holds no photo in memory: a provider reads the bytes (`await image.read()`) or opens `image.path`
    only when and while it needs them. They stay valid until `run` returns (a spool file is removed then).
    """

    job_id: str
    attempt: int
    operation_id: str
    settings: dict[str, Any]
    source: ImageSource | None
    media: dict[str, ImageSource] = field(default_factory=dict)
    timeout_sec: float = 48.0
    public_url: PublicLinker = _no_public_links
    webhook_url: str | None = None
    start_by: float | None = None
    resume_ref: str | None = None
    submitted: Callable[[str], Awaitable[None]] | None = None

    def photo(self) -> ImageSource:
        """The input image; raises `ProviderError("input_missing")` (not retryable) when the job has none."""
        if self.source is None:
            raise ProviderError("input_missing", f"{self.operation_id} needs an input image", retryable=False)
        return self.source


@dataclass(frozen=True)
class ProviderResult:
    """The processed media and what the call cost (in the catalog's currency, 0 for offline work).

    `image` is the primary output: an image, or for a video operation (fal `image_to_video`) the video itself
    (`mime` `video/mp4`, identified by its bytes). `extra` holds further outputs when the operation made several
    (e.g. `num_images` > 1), in the provider's order. `data` is JSON the operation returns besides its media
    (seed, timings, NSFW flags: fal's result body without its media URLs), kept on the job for the caller."""

    image: ImageInput
    cost: float = 0.0
    extra: tuple[ImageInput, ...] = ()
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class ProviderData:
    """An operation whose product is not media but a record, e.g. a fine-tune's `{"finetune_id": "..."}` (fal's
    FLUX Pro trainer): `data` is kept on the job as its result; `cost` as in `ProviderResult`."""

    data: dict[str, Any]
    cost: float = 0.0


@dataclass(frozen=True)
class ProviderParked:
    """The provider accepted the work and will call our webhook with the result (e.g. Turbotext `asyncid`).

    The job parks as `waiting_provider`; `provider_ref` is the provider's id for it (kept on the job)."""

    provider_ref: str


MAX_RETRY_HINT_SEC = 86_400.0  # a provider's wait hint beyond a day is treated as a day


def retry_hint_seconds(value: object) -> float | None:
    """A provider's wait hint (a `Retry-After` header's seconds, Google's RetryInfo delay) as a finite number of
    seconds in [0, one day]; None when absent or not a number (`nan`, the HTTP-date form, garbage)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        seconds = float(str(value).strip())
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_HINT_SEC)


class ProviderError(Exception):
    """A typed provider failure, with what is known about how long it lasts.

    `retryable` tells the queue whether another attempt may succeed (network faults, 429, 5xx, an empty or
    malformed answer). `retry_after` is the provider's own hint in seconds, when it gave one (Retry-After,
    Google's RetryInfo). For a quota refusal, `quota_scope` names the window that is full (`minute`, `day`,
    or the provider's own word), `quota_id` the provider's name for the quota, and `resets_at` (UTC) when it
    frees up; the retry policy never starts an attempt before then, nor one that cannot end before the
    booth's deadline.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        quota_scope: str | None = None,
        quota_id: str | None = None,
        resets_at: datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.quota_scope = quota_scope
        self.quota_id = quota_id
        self.resets_at = resets_at

    def details(self) -> dict[str, Any]:
        """What is known about the failure's duration, as JSON-ready values (empty when nothing is known)."""
        out: dict[str, Any] = {}
        if self.retry_after is not None:
            out["retry_after_sec"] = round(self.retry_after, 3)
        if self.quota_scope is not None:
            out["quota_scope"] = self.quota_scope
        if self.quota_id is not None:
            out["quota_id"] = self.quota_id
        if self.resets_at is not None:
            out["resets_at"] = self.resets_at.isoformat()
        return out


class Provider(Protocol):
    """An AI service adapter. `id` matches `providers[].id` in the catalog.

    `run` performs one attempt of `request.operation_id` and returns the image (or, for a provider that
    answers later through our webhook, `ProviderParked`), or raises `ProviderError`. Implementations hold
    their HTTP clients for the life of the process and must not block the event loop (CPU work goes to a
    thread).
    """

    id: str

    async def run(self, request: ProviderRequest) -> ProviderResult | ProviderParked | ProviderData: ...

    async def close(self) -> None: ...


@runtime_checkable
class KeyedProvider(Provider, Protocol):
    """A provider whose declaration has an API key (`ProviderDeclaration.key`): the settings store hands it the
    keys in effect (the settings page's, else the environment's) at start and whenever an operator changes them,
    without a restart. The registry refuses to build a keyed provider whose adapter lacks `set_keys`."""

    def set_keys(self, keys: list[str]) -> None: ...


@runtime_checkable
class SignedCallbackProvider(Protocol):
    """A provider whose webhook deliveries are signed (fal): `verify_callback` gets the raw body and the headers
    before anything else looks at the delivery (the token in the URL is still required after it), and raises
    `ProviderError` (code `callback_unverified`) for a forged, unsigned or stale delivery."""

    async def verify_callback(self, headers: Mapping[str, str], body: bytes) -> None: ...


@runtime_checkable
class CancellableProvider(Protocol):
    """A provider with a cancel API (fal's queue): `cancel` asks it to stop the work known as `provider_ref`
    (for `operation_id` with `settings`) and returns the provider's answer in a word; raises `ProviderError` when
    the provider cannot be asked. Called best effort when an operator cancels a job waiting at the provider."""

    async def cancel(self, provider_ref: str, operation_id: str, settings: Mapping[str, Any]) -> str: ...


class CallbackProvider(Provider, Protocol):
    """A provider whose results may arrive at `POST /webhooks/{provider_id}/{job_id}/{token}`.

    `result_from_callback` turns the delivered body (already parsed: JSON object, or form fields) into the
    image — downloading it if the provider sends a URL — or raises `ProviderError` for a failure report.
    `deadline` (a `time.monotonic()` value from the job's deadline) bounds that download; a provider that
    downloads nothing may leave the keyword out (the webhook service passes it only where it is taken).
    """

    async def result_from_callback(
        self, payload: dict[str, Any], *, deadline: float | None = None
    ) -> ProviderResult: ...
