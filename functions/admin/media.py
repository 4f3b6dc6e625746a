"""Media endpoints: upload images (slot templates, temporary public links) and serve public links.

An operator finds, reuses and extends only their own uploads (see `boothbridge.media.service`): another
operator's object is answered exactly like a missing one (404 media_not_found). Upload bodies that stall are cut
with 408 request_timeout (BODY_TIMEOUT_SEC)."""

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from boothbridge.accounts.sign_in import Operator
from boothbridge.bootstrap import Container
from boothbridge.errors import AppError
from boothbridge.http.multipart import BodyTimeoutRoute
from boothbridge.http.openapi import AUTH, BODY, INVALID, errors, merge
from boothbridge.images.upload import inspect_image
from boothbridge.media.service import MediaExpired, MediaNotFound, MediaRef

ACCEPTED_MIME = ("image/jpeg", "image/png", "image/webp")
DEFAULT_PUBLIC_TTL_SEC = 900  # for /api/media/extend; registration defaults to PUBLIC_LINK_TTL_SEC
MAX_PUBLIC_TTL_SEC = 7 * 24 * 3600
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
UPLOAD_KINDS = ["template", "public"]


class ExtendRequest(BaseModel):
    id: uuid.UUID
    ttl_sec: int = Field(DEFAULT_PUBLIC_TTL_SEC, ge=1, le=MAX_PUBLIC_TTL_SEC)


def media_json(c: Container, ref: MediaRef, expires_at: datetime | None) -> dict[str, Any]:
    return {
        "id": str(ref.id),
        "public_url": f"{c.settings.base_url}/public/media/{ref.id}",
        "expires_at": expires_at.isoformat() if expires_at else None,
        "mime": ref.mime,
        "size_bytes": ref.size_bytes,
        "sha256": ref.sha256,
        "kind": ref.kind,
    }


def media_router(get_container: Any, operator_dep: Any) -> APIRouter:
    router = APIRouter(tags=["media"], route_class=BodyTimeoutRoute)
    OperatorDep = Annotated[Operator, Depends(operator_dep)]

    @router.post(
        "/api/media/register",
        responses=errors(
            *AUTH,
            *BODY,
            "400 file_empty",
            "408 request_timeout",
            "413 file_too_large",
            "415 unsupported_media_type",
            "422 image_undecodable",
            "422 image_too_many_pixels",
        ),
    )
    async def register(
        file: Annotated[UploadFile, File(description="a JPEG, PNG or WebP image")],
        operator: OperatorDep,
        purpose: Annotated[str, Form(pattern="^(template|public)$")] = "public",
        ttl_sec: Annotated[int | None, Form(ge=1, le=MAX_PUBLIC_TTL_SEC)] = None,
    ) -> dict[str, Any]:
        """Store an image: a slot template (kept while referenced) or a temporary public link. The same bytes
        uploaded again by the same operator return the same object (a public link's expiry becomes the later of
        the two); another operator's identical upload is an object of their own."""
        c: Container = await get_container()
        data = await file.read(c.settings.max_upload_bytes + 1)
        if not data:
            raise AppError(400, "file_empty", "the uploaded file is empty")
        if len(data) > c.settings.max_upload_bytes:
            raise AppError(
                413, "file_too_large", "the upload is larger than accepted", {"max_bytes": c.settings.max_upload_bytes}
            )
        info = await asyncio.to_thread(inspect_image, data, ACCEPTED_MIME, c.settings.max_image_pixels)
        ttl = ttl_sec if ttl_sec is not None else c.settings.public_link_ttl_sec
        expires = None if purpose == "template" else datetime.now(UTC) + timedelta(seconds=ttl)
        ref = await c.media.save(purpose, data, info.mime, expires, owner_id=operator.id)
        return media_json(c, ref, ref.expires_at)

    @router.post(
        "/api/media/extend",
        responses=errors(*AUTH, *BODY, "404 media_not_found", "409 media_not_temporary", "410 media_expired"),
    )
    async def extend(body: ExtendRequest, operator: OperatorDep) -> dict[str, Any]:
        """Push a live public link of the operator's to `ttl_sec` from now (never earlier: the same uploaded bytes
        share one object, so one link's extension must not cut another's short). Another operator's object, or
        one the service made itself, is 404 media_not_found."""
        c: Container = await get_container()
        try:
            ref = await c.media.describe(body.id, owner_id=operator.id)
        except MediaNotFound:
            raise AppError(404, "media_not_found", "no such media object") from None
        except MediaExpired:
            raise AppError(410, "media_expired", "the link has already expired") from None
        if ref.expires_at is None:
            raise AppError(409, "media_not_temporary", "this object does not expire")
        expires = datetime.now(UTC) + timedelta(seconds=body.ttl_sec)
        extended = await c.media.extend(body.id, expires, owner_id=operator.id)
        if extended is None:  # expired (or removed) since it was read
            raise AppError(410, "media_expired", "the link has already expired")
        return media_json(c, extended, extended.expires_at)

    @router.get(
        "/api/media/hash/{sha256}",
        responses=errors(*AUTH, INVALID, "400 invalid_parameter", "404 media_not_found"),
    )
    async def by_hash(
        sha256: str,
        operator: OperatorDep,
        kind: Annotated[str | None, Query(max_length=20, description="'template' or 'public' (default: both)")] = None,
    ) -> dict[str, Any]:
        """The operator's own live upload (template or public link) with these bytes, if any: lets a client check
        its file's SHA-256 before uploading it. Booth photos, results and other operators' uploads are never
        found here."""
        if not _SHA256.fullmatch(sha256):
            raise AppError(400, "invalid_parameter", "sha256 must be 64 hexadecimal digits", {"parameter": "sha256"})
        if kind is not None and kind not in UPLOAD_KINDS:
            raise AppError(
                400,
                "invalid_parameter",
                "kind must be 'template' or 'public'",
                {"parameter": "kind", "allowed": UPLOAD_KINDS},
            )
        c: Container = await get_container()
        ref = await c.media.find_live(sha256.lower(), operator.id, (kind,) if kind else tuple(UPLOAD_KINDS))
        if ref is None:
            raise AppError(404, "media_not_found", "no live object with these bytes", {"sha256": sha256.lower()})
        return media_json(c, ref, ref.expires_at)

    @router.get(
        "/public/media/{media_id}",
        response_model=None,
        response_class=Response,  # documents the image itself; errors stay JSON
        responses=merge(
            {200: {"description": "the stored image", "content": {mime: {} for mime in ACCEPTED_MIME}}},
            errors(INVALID, "404 media_not_found", "410 media_expired"),
        ),
    )
    async def public_media(media_id: str) -> Response:
        """Serve a media object while it is valid: 404 if unknown, 410 once expired."""
        c: Container = await get_container()
        try:
            data, ref = await c.media.read(uuid.UUID(media_id))
        except (ValueError, MediaNotFound):
            raise AppError(404, "media_not_found", "no such media object") from None
        except MediaExpired:
            raise AppError(410, "media_expired", "the link has expired") from None
        max_age = 86400 if ref.expires_at is None else int((ref.expires_at - datetime.now(UTC)).total_seconds())
        return Response(data, media_type=ref.mime, headers={"Cache-Control": f"private, max-age={max(max_age, 0)}"})

    return router
