"""A task's input images: each `InputRef` (URL, base64 or media id) made a media row owned by the calling operator
(issue 15).

Two phases, so that a task refused for any input stores nothing: `load` reads and checks one input (a URL fetched
by `tasks.fetch`, base64 decoded, a media id looked up among the caller's own live objects), `store` then saves
the bytes loaded. Every image passes the same checks as an operator's upload (`images.upload.inspect_image`: the
type sniffed from the bytes, JPEG, PNG or WebP, fully decoded within the pixel limit). Stored inputs are
`public`-kind objects with the caller's `owner_id`: the same bytes from the same operator are stored once
(sha256 de-duplication, the later expiry kept), and a URL-fetching provider can be handed a link to them.

Errors (AppError, `details.input` names the input: `source`, `steps/<i>/inputs/<name>` or `file`): those of
`tasks.fetch`, 400 `input_empty`, 415 `input_not_image`, 422 `image_undecodable` / `image_too_many_pixels`, 404
`media_not_found` (a media id that is not the caller's, or gone), 410 `media_expired`.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime

import httpx

from boothbridge.errors import AppError
from boothbridge.media.ref import MediaRef
from boothbridge.media.service import MediaExpired, MediaNotFound, MediaService
from boothbridge.settings import Settings
from boothbridge.tasks.fetch import decode_base64, fetch_url
from boothbridge.tasks.model import InputRef

ACCEPTED_MIME = ("image/jpeg", "image/png", "image/webp")
INPUT_KIND = "public"


@dataclass(frozen=True)
class LoadedInput:
    """An input checked and ready to store: new bytes (`data`, `mime`), or an existing object of the caller's
    (`existing`)."""

    name: str
    data: bytes | None = None
    mime: str | None = None
    existing: MediaRef | None = None


class TaskInputs:
    """Loads and stores task inputs. `http`: the client URLs are fetched with (it must not follow redirects)."""

    def __init__(self, media: MediaService, settings: Settings, http: httpx.AsyncClient) -> None:
        self.media = media
        self.settings = settings
        self.http = http

    async def load(self, ref: InputRef, name: str, owner_id: int, max_bytes: int) -> LoadedInput:
        """Read and check one input (see the module docstring); nothing is stored."""
        try:
            if ref.media_id is not None:
                return LoadedInput(name, existing=await self._owned(ref.media_id, owner_id))
            if ref.url is not None:
                data = await fetch_url(
                    self.http,
                    ref.url,
                    max_bytes=max_bytes,
                    timeout_sec=self.settings.task_fetch_timeout_sec,
                    max_redirects=self.settings.task_fetch_max_redirects,
                    allow_private=self.settings.fetch_allows_private,
                )
            else:
                assert ref.base64 is not None  # InputRef holds exactly one
                data = decode_base64(ref.base64, max_bytes)
            return LoadedInput(name, data=data, mime=await self.check_image(data))
        except AppError as err:
            err.details.setdefault("input", name)
            raise

    async def check_image(self, data: bytes) -> str:
        """The sniffed type of an accepted image (errors: see the module docstring)."""
        from boothbridge.images.upload import inspect_image  # deferred: Pillow

        if not data:
            raise AppError(400, "input_empty", "the input image is empty")
        try:
            info = await asyncio.to_thread(inspect_image, data, ACCEPTED_MIME, self.settings.max_image_pixels)
        except AppError as err:
            if err.status == 415:
                raise AppError(
                    415, "input_not_image", "the input is not a JPEG, PNG or WebP image", err.details
                ) from err
            raise
        return info.mime

    async def store(self, loaded: LoadedInput, owner_id: int, expires_at: datetime) -> MediaRef:
        """The media row of a loaded input: the existing object (its expiry pushed to `expires_at` when earlier),
        or the bytes saved for the caller until `expires_at` (de-duplicated among the caller's own)."""
        if loaded.existing is not None:
            ref = loaded.existing
            if ref.expires_at is not None and ref.expires_at < expires_at:
                # An upload of the caller's must outlive the task that uses it (never shortened; gone: as it was).
                ref = await self.media.extend(ref.id, expires_at, owner_id=owner_id) or ref
            return ref
        assert loaded.data is not None and loaded.mime is not None
        return await self.media.save(INPUT_KIND, loaded.data, loaded.mime, expires_at, owner_id=owner_id)

    async def _owned(self, media_id: uuid.UUID, owner_id: int) -> MediaRef:
        try:
            ref = await self.media.describe(media_id, owner_id=owner_id)
        except MediaNotFound as exc:
            raise AppError(404, "media_not_found", "no such media object", {"media_id": str(media_id)}) from exc
        except MediaExpired as exc:
            raise AppError(410, "media_expired", "the media object has expired", {"media_id": str(media_id)}) from exc
        if not ref.mime.startswith("image/"):
            raise AppError(415, "input_not_image", "the media object is not an image", {"media_id": str(media_id)})
        return ref
