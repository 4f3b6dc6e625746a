"""Media endpoints: upload images (slot templates, temporary public links) and serve public links.

An operator finds, reuses and extends only their own uploads (see `boothbridge.media.service`): another
operator's object is answered exactly like a missing one (404 media_not_found). Upload bodies that stall are cut
with 408 request_timeout (BODY_TIMEOUT_SEC).

The media service's module (SQLAlchemy) and the image inspection (Pillow) are imported by the endpoints that use
them, not here: the operator API's cold import does without them (issue 13); the first request's container has
loaded the former already."""

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import Response

from boothbridge.errors import AppError
from boothbridge.http.multipart import BodyTimeoutRoute
from boothbridge.http.openapi import AUTH, BODY, INVALID, errors, merge
from boothbridge.media.ref import MediaRef
from functions.admin.deps import MediaDep, OperatorDep, SettingsDep
from functions.admin.schemas import MAX_PUBLIC_TTL_SEC, ExtendRequest, MediaObject

ACCEPTED_MIME = ("image/jpeg", "image/png", "image/webp")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
UPLOAD_KINDS = ["template", "public"]

router = APIRouter(tags=["media"], route_class=BodyTimeoutRoute)


def public_media_url(base_url: str, media_id: object) -> str:
    """Where `GET /public/media/{media_id}` serves an object (no token needed)."""
    return f"{base_url}/public/media/{media_id}"


def media_answer(base_url: str, ref: MediaRef) -> MediaObject:
    return MediaObject(
        id=ref.id,
        public_url=public_media_url(base_url, ref.id),
        expires_at=ref.expires_at.isoformat() if ref.expires_at else None,
        mime=ref.mime,
        size_bytes=ref.size_bytes,
        sha256=ref.sha256,
        kind=ref.kind,
    )


@router.post(
    "/api/media/register",
    response_model=MediaObject,
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
    settings: SettingsDep,
    media: MediaDep,
    purpose: Annotated[str, Form(pattern="^(template|public)$")] = "public",
    ttl_sec: Annotated[int | None, Form(ge=1, le=MAX_PUBLIC_TTL_SEC)] = None,
) -> MediaObject:
    """Store an image: a slot template (kept while referenced) or a temporary public link. The same bytes
    uploaded again by the same operator return the same object (a public link's expiry becomes the later of
    the two); another operator's identical upload is an object of their own."""
    from boothbridge.images.upload import inspect_image  # deferred: Pillow (see the module docstring)

    data = await file.read(settings.max_upload_bytes + 1)
    if not data:
        raise AppError(400, "file_empty", "the uploaded file is empty")
    if len(data) > settings.max_upload_bytes:
        raise AppError(
            413, "file_too_large", "the upload is larger than accepted", {"max_bytes": settings.max_upload_bytes}
        )
    info = await asyncio.to_thread(inspect_image, data, ACCEPTED_MIME, settings.max_image_pixels)
    ttl = ttl_sec if ttl_sec is not None else settings.public_link_ttl_sec
    expires = None if purpose == "template" else datetime.now(UTC) + timedelta(seconds=ttl)
    ref = await media.save(purpose, data, info.mime, expires, owner_id=operator.id)
    return media_answer(settings.base_url, ref)


@router.post(
    "/api/media/extend",
    response_model=MediaObject,
    responses=errors(*AUTH, *BODY, "404 media_not_found", "409 media_not_temporary", "410 media_expired"),
)
async def extend(body: ExtendRequest, operator: OperatorDep, settings: SettingsDep, media: MediaDep) -> MediaObject:
    """Push a live public link of the operator's to `ttl_sec` from now (never earlier: the same uploaded bytes
    share one object, so one link's extension must not cut another's short). Another operator's object, or
    one the service made itself, is 404 media_not_found."""
    from boothbridge.media.service import MediaExpired, MediaNotFound  # deferred: see the module docstring

    try:
        ref = await media.describe(body.id, owner_id=operator.id)
    except MediaNotFound:
        raise AppError(404, "media_not_found", "no such media object") from None
    except MediaExpired:
        raise AppError(410, "media_expired", "the link has already expired") from None
    if ref.expires_at is None:
        raise AppError(409, "media_not_temporary", "this object does not expire")
    expires = datetime.now(UTC) + timedelta(seconds=body.ttl_sec)
    extended = await media.extend(body.id, expires, owner_id=operator.id)
    if extended is None:  # expired (or removed) since it was read
        raise AppError(410, "media_expired", "the link has already expired")
    return media_answer(settings.base_url, extended)


@router.get(
    "/api/media/hash/{sha256}",
    response_model=MediaObject,
    responses=errors(*AUTH, INVALID, "400 invalid_parameter", "404 media_not_found"),
)
async def by_hash(
    sha256: str,
    operator: OperatorDep,
    settings: SettingsDep,
    media: MediaDep,
    kind: Annotated[str | None, Query(max_length=20, description="'template' or 'public' (default: both)")] = None,
) -> MediaObject:
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
    ref = await media.find_live(sha256.lower(), operator.id, (kind,) if kind else tuple(UPLOAD_KINDS))
    if ref is None:
        raise AppError(404, "media_not_found", "no live object with these bytes", {"sha256": sha256.lower()})
    return media_answer(settings.base_url, ref)


@router.get(
    "/public/media/{media_id}",
    response_model=None,
    response_class=Response,  # documents the image itself; errors stay JSON
    responses=merge(
        {200: {"description": "the stored image", "content": {mime: {} for mime in ACCEPTED_MIME}}},
        errors(INVALID, "404 media_not_found", "410 media_expired"),
    ),
)
async def public_media(media_id: str, media: MediaDep) -> Response:
    """Serve a media object while it is valid: 404 if unknown, 410 once expired."""
    from boothbridge.media.service import MediaExpired, MediaNotFound  # deferred: see the module docstring

    try:
        data, ref = await media.read(uuid.UUID(media_id))
    except (ValueError, MediaNotFound):
        raise AppError(404, "media_not_found", "no such media object") from None
    except MediaExpired:
        raise AppError(410, "media_expired", "the link has expired") from None
    max_age = 86400 if ref.expires_at is None else int((ref.expires_at - datetime.now(UTC)).total_seconds())
    return Response(data, media_type=ref.mime, headers={"Cache-Control": f"private, max-age={max(max_age, 0)}"})
