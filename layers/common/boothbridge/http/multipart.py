"""Reading the booth's multipart body with a hard size limit, so an oversized upload is refused early."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from boothbridge.errors import AppError
from boothbridge.ingest_model import UploadedForm, too_large

FILE_FIELD = "fileToUpload"
# Room for the text fields and part headers on top of the photo itself.
FORM_OVERHEAD_BYTES = 256 * 1024


async def read_booth_form(request: Request, max_file_bytes: int) -> UploadedForm:
    """Parse `multipart/form-data`; 413 before reading when Content-Length is already too big (so an
    `Expect: 100-continue` client never sends the body), and 413 while streaming if it grows too big."""
    limit = max_file_bytes + FORM_OVERHEAD_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(max_file_bytes)
    ctype = request.headers.get("content-type", "").lower()

    async def limited() -> AsyncGenerator[bytes, None]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise too_large(max_file_bytes)
            yield chunk

    if ctype.startswith("application/x-www-form-urlencoded"):
        # A form without a file part still carries the password: parse it so the answer can be precise.
        body = b"".join([chunk async for chunk in limited()])
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        return UploadedForm(file=None, filename=None, declared_type=None, fields=dict(reversed(pairs)))
    if not ctype.startswith("multipart/form-data"):
        raise AppError(400, "invalid_form", "the request must be multipart/form-data with a fileToUpload part")

    parser = MultiPartParser(request.headers, limited(), max_files=4, max_fields=200)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise AppError(400, "invalid_form", f"the multipart body is malformed: {exc.message}") from exc
    except ClientDisconnect as exc:
        raise AppError(400, "client_disconnected", "the client closed the connection mid-upload") from exc
    fields: dict[str, str] = {}
    photo: UploadFile | None = None
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name == FILE_FIELD and photo is None:
                photo = value
            continue
        fields.setdefault(name, value)
    try:
        data = await photo.read() if photo is not None else None
        return UploadedForm(
            file=data,
            filename=photo.filename if photo is not None else None,
            declared_type=photo.content_type if photo is not None else None,
            fields=fields,
        )
    finally:
        await form.close()
