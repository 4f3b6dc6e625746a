"""Reading the booth's multipart body with a hard size limit, so an oversized upload is refused early.

The photo is the first part *named* `fileToUpload`, however its Content-Disposition names a file: with
`filename=`, only with RFC 5987's `filename*=UTF-8''…`, with both, or not at all. Its bytes are kept exactly as
sent (never decoded as text): handed to a `PhotoSink` piece by piece as they arrive (the booth's photo streams to
storage; nothing here holds more than the body chunk at hand), or, without a sink, collected. Every other part
that names a file is skipped; every other part is a text field. The body is parsed with python-multipart's
streaming parser, not Starlette's form parser, because Starlette decides "file or text field" by the presence of
a plain `filename` parameter.

A body that stalls (slow-loris: no bytes for BODY_TIMEOUT_SEC, default 30 s, between two chunks) is cut with
`408 request_timeout`. The limit is on the gap between chunks, not on the whole body: a booth on slow event
Wi-Fi may take minutes over a 20 MB photo, but it never goes silent for 30 s. `BodyTimeoutRoute` does the same
for FastAPI endpoints that read a form (the operator API's uploads).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi.routing import APIRoute
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive

from boothbridge.errors import AppError
from boothbridge.http.form_text import charset_of, decode_text, extended_filename
from boothbridge.ingest.model import PhotoSink, UploadedForm, too_large

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

FILE_FIELD = "fileToUpload"
# Room for the text fields and part headers on top of the photo itself.
FORM_OVERHEAD_BYTES = 256 * 1024
MAX_FILE_PARTS = 4  # parts named fileToUpload or naming a file
MAX_TEXT_FIELDS = 200
MAX_TEXT_FIELD_BYTES = 1024 * 1024

DEFAULT_BODY_TIMEOUT_SEC = 30.0


def request_timeout(seconds: float) -> AppError:
    return AppError(
        408,
        "request_timeout",
        "the request body stalled: nothing arrived for too long",
        {"body_timeout_sec": seconds},
        headers={"Connection": "close"},
    )


async def body_timeout_for(request: Request) -> float:
    """BODY_TIMEOUT_SEC of the app serving `request` (its container's settings), else the default."""
    app = request.scope.get("app")
    holder = getattr(getattr(app, "state", None), "holder", None)
    if holder is None:
        return DEFAULT_BODY_TIMEOUT_SEC
    return float((await holder.get()).settings.body_timeout_sec)


async def read_booth_form(
    request: Request,
    max_file_bytes: int,
    *,
    body_timeout_sec: float | None = None,
    sink: PhotoSink | None = None,
) -> UploadedForm:
    """Parse `multipart/form-data`; 413 before reading when Content-Length is already too big (so an
    `Expect: 100-continue` client never sends the body), 413 while streaming if it grows too big, and 408 when
    no chunk arrives for `body_timeout_sec` (default: the app's BODY_TIMEOUT_SEC).

    With a `sink`, the photo part goes to it as it arrives (`begin` with the text fields read before it, then
    `write` after each body chunk) and the form's `file` is None (`streamed_size` says how big it was); an error
    the sink raises ends the reading. The form's `body_wait_sec` is the time spent waiting for body chunks."""
    ctype = request.headers.get("content-type", "")
    urlencoded = ctype.lower().startswith("application/x-www-form-urlencoded")
    # A urlencoded form carries no file: only the room the text fields of a multipart form get (parsing a 20 MB
    # one of millions of fields blocked the event loop for seconds, for an unauthenticated caller).
    limit = FORM_OVERHEAD_BYTES if urlencoded else max_file_bytes + FORM_OVERHEAD_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _form_too_large(limit) if urlencoded else too_large(max_file_bytes)
    timeout = body_timeout_sec if body_timeout_sec is not None else await body_timeout_for(request)

    waited = 0.0

    async def limited() -> AsyncGenerator[bytes, None]:
        nonlocal waited
        seen = 0
        chunks = request.stream().__aiter__()
        while True:
            asked = time.perf_counter()
            try:
                async with asyncio.timeout(timeout):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise request_timeout(timeout) from None
            finally:
                waited += time.perf_counter() - asked
            seen += len(chunk)
            if seen > limit:
                raise _form_too_large(limit) if urlencoded else too_large(max_file_bytes)
            yield chunk

    if urlencoded:
        # A form without a file part still carries the password: parse it so the answer can be precise.
        body = b"".join([chunk async for chunk in limited()])
        try:
            pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_TEXT_FIELDS)
        except ValueError:
            raise _malformed(f"more than {MAX_TEXT_FIELDS} fields") from None
        return UploadedForm(
            file=None, filename=None, declared_type=None, fields=dict(reversed(pairs)), body_wait_sec=waited
        )
    if not ctype.lower().startswith("multipart/form-data"):
        raise AppError(400, "invalid_form", "the request must be multipart/form-data with a fileToUpload part")

    _, params = parse_options_header(ctype)
    boundary = params.get(b"boundary")
    if not boundary:
        raise _malformed("Missing boundary in multipart.")
    form = _BoothForm(charset_of(params.get(b"charset")), streamed=sink is not None)
    try:
        parser = MultipartParser(boundary, form.callbacks())
        async for chunk in limited():
            parser.write(chunk)
            if sink is not None:
                await form.hand_over(sink)
        parser.finalize()
        if form.photo_open:
            # The body ended inside the photo part (no closing boundary): the parser never ended the part, so
            # what the sink got may be the photo cut short or the photo without the bytes the parser held back.
            raise _malformed("the body ends inside the fileToUpload part.")
        if sink is not None:
            await form.hand_over(sink)
    except FormParserError as exc:
        raise _malformed("Invalid multipart data.") from exc
    except ClientDisconnect as exc:
        raise AppError(400, "client_disconnected", "the client closed the connection mid-upload") from exc
    return UploadedForm(
        file=form.photo,
        filename=form.filename,
        declared_type=form.declared_type,
        fields=form.fields,
        streamed_size=form.streamed_size,
        body_wait_sec=waited,
    )


class _BoothForm:
    """python-multipart callbacks collecting the text fields, and the photo (`streamed`: only until `hand_over`
    passes what the last chunk brought to the sink), part by part. The callbacks cannot await, so the photo's
    start and bytes wait here for `hand_over`, which the reader awaits after each chunk."""

    def __init__(self, charset: str, *, streamed: bool = False) -> None:
        self.charset = charset
        self.streamed = streamed
        self.streamed_size: int | None = None
        self._begun: dict[str, str] | None = None  # the fields before the photo part, until handed over
        self._pending = bytearray()  # the photo bytes of the current chunk, until handed over
        self.photo: bytes | None = None
        self.filename: str | None = None
        self.declared_type: str | None = None
        self.fields: dict[str, str] = {}
        self._file_parts = 0
        self._text_fields = 0
        self._photo_taken = False
        self.photo_open = False  # inside the photo part: its headers came, its end has not
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._reset_part()

    def _reset_part(self) -> None:
        self._disposition = b""
        self._content_type: bytes | None = None
        self._name = ""
        self._filename: str | None = None
        self._kind = "skip"  # "photo", "text" or "skip" (a file part that is not the photo)
        self._data = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._reset_part,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
        }

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += memoryview(data)[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += memoryview(data)[start:end]

    def _on_header_end(self) -> None:
        name, value = bytes(self._header_name).strip().lower(), bytes(self._header_value).strip()
        self._header_name.clear()
        self._header_value.clear()
        if name == b"content-disposition":
            self._disposition = value
        elif name == b"content-type" and self._content_type is None:
            self._content_type = value

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise _malformed('The Content-Disposition header field "name" must be provided.')
        self._name = decode_text(options[b"name"], self.charset)
        plain = decode_text(options[b"filename"], self.charset) if b"filename" in options else None
        extended = extended_filename(self._disposition)
        # RFC 6266 §4.3: filename* wins when both are given (filename is then the ASCII fallback).
        self._filename = extended if extended is not None else plain
        if self._name == FILE_FIELD or b"filename" in options or extended is not None:
            self._file_parts += 1
            if self._file_parts > MAX_FILE_PARTS:
                raise _malformed(f"Too many files. Maximum number of files is {MAX_FILE_PARTS}.")
            if self._name == FILE_FIELD and not self._photo_taken:
                self._photo_taken = True
                self.photo_open = True
                self._kind = "photo"
                if self.streamed:
                    self._begun = dict(self.fields)
                    self.streamed_size = 0
        else:
            self._text_fields += 1
            if self._text_fields > MAX_TEXT_FIELDS:
                raise _malformed(f"Too many fields. Maximum number of fields is {MAX_TEXT_FIELDS}.")
            self._kind = "text"

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._kind == "skip":
            return
        if self._kind == "photo" and self.streamed:
            # Copied: the parser may hand its own look-behind buffer, which it reuses.
            self._pending += memoryview(data)[start:end]
            return
        if self._kind == "text" and len(self._data) + (end - start) > MAX_TEXT_FIELD_BYTES:
            raise _malformed(f"Part exceeded maximum size of {MAX_TEXT_FIELD_BYTES // 1024}KB.")
        self._data += memoryview(data)[start:end]

    def _on_part_end(self) -> None:
        if self._kind == "photo":
            self.photo_open = False
            self.photo = None if self.streamed else bytes(self._data)
            self.filename = self._filename
            self.declared_type = self._content_type.decode("latin-1") if self._content_type is not None else None
        elif self._kind == "text":
            self.fields.setdefault(self._name, decode_text(self._data, self.charset))
        self._data = bytearray()

    async def hand_over(self, sink: PhotoSink) -> None:
        """Pass the photo's start and the bytes the last chunk brought to `sink`."""
        if self._begun is not None:
            fields, self._begun = self._begun, None
            await sink.begin(fields)
        if self._pending:
            data, self._pending = self._pending, bytearray()
            assert self.streamed_size is not None
            self.streamed_size += len(data)
            await sink.write(data)


def _form_too_large(limit: int) -> AppError:
    return AppError(
        413, "form_too_large", "a form without a file may hold at most this many bytes", {"max_bytes": limit}
    )


def _malformed(reason: str) -> AppError:
    return AppError(400, "invalid_form", f"the multipart body is malformed: {reason}")


class BodyTimeoutRoute(APIRoute):
    """A route whose request body is cut with `408 request_timeout` when no chunk arrives for BODY_TIMEOUT_SEC.

    FastAPI reads a form body before the endpoint runs and turns any failure while reading into its own 400, so
    the stalled `receive` ends the body as a disconnect and the 408 is raised here, once FastAPI gave up."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def timed(request: Request) -> Response:
            timeout = await body_timeout_for(request)
            stalled: list[bool] = []
            receive = _timed_receive(request.receive, timeout, stalled)
            try:
                return await handle(Request(request.scope, receive))
            except Exception:
                if stalled:
                    raise request_timeout(timeout) from None
                raise

        return timed


def _timed_receive(receive: Receive, timeout: float, stalled: list[Any]) -> Receive:
    async def timed() -> Message:
        try:
            async with asyncio.timeout(timeout):
                return await receive()
        except TimeoutError:
            stalled.append(True)
            return {"type": "http.disconnect"}

    return timed
