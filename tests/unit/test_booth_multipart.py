"""read_booth_form: the photo is the first part named fileToUpload, however (or whether) it names a file, and its
bytes arrive exactly as sent; the limits and errors of the form reader are kept."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import pytest
from starlette.requests import Request

from boothbridge.errors import AppError
from boothbridge.http.multipart import read_booth_form

BOUNDARY = "----bbBoundary7MA4YWxk"
# Not UTF-8, with CR LF, dashes and a near-boundary inside: any text decoding or boundary slip would show.
PHOTO = (
    b"\xff\xd8\xff\xe0" + bytes(range(256)) + b"\r\n--" + BOUNDARY[:-1].encode() + b"\r\n\xff\xd9" + os.urandom(4096)
)
LIMIT = 1024 * 1024


def part(disposition: str, body: bytes, content_type: str | None = None) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode("utf-8") + b"\r\n" + body + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def text(name: str, value: str) -> bytes:
    return part(f'form-data; name="{name}"', value.encode())


def request(
    content: bytes,
    *,
    ctype: str | None = f"multipart/form-data; boundary={BOUNDARY}",
    chunk: int = 65536,
    length: bool = True,
    disconnect: bool = False,
) -> Request:
    headers: list[tuple[bytes, bytes]] = []
    if ctype is not None:
        headers.append((b"content-type", ctype.encode("latin-1")))
    if length:
        headers.append((b"content-length", str(len(content)).encode()))
    chunks = [content[i : i + chunk] for i in range(0, len(content), chunk)] or [b""]
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    if disconnect:
        messages = [*messages[: max(len(messages) // 2, 1)], {"type": "http.disconnect"}]
        messages[-2]["more_body"] = True
    queue = iter(messages)

    async def receive() -> dict[str, Any]:
        return next(queue, {"type": "http.disconnect"})

    scope = {"type": "http", "method": "POST", "path": "/ingest/slot-001", "headers": headers, "query_string": b""}
    return Request(scope, receive)


async def read(content: bytes, **kwargs: Any) -> Any:
    return await read_booth_form(request(content, **kwargs), LIMIT)


DSLR = [text("password", "123456"), text("time", "1758217512"), text("version", "3.30.2")]


async def test_reported_input_a_photo_named_only_by_rfc5987_filename_star() -> None:
    photo = part("form-data; name=\"fileToUpload\"; filename*=UTF-8''%E2%82%AC%20rates.jpg", PHOTO, "image/jpeg")
    form = await read(body(photo, *DSLR))
    assert form.file == PHOTO
    assert form.filename == "€ rates.jpg"
    assert form.declared_type == "image/jpeg"
    assert form.fields == {"password": "123456", "time": "1758217512", "version": "3.30.2"}


@pytest.mark.parametrize(
    ("disposition", "filename"),
    [
        ('form-data; name="fileToUpload"', None),  # no file name at all
        ('form-data; name="fileToUpload"; filename="IMG_0003.JPG"', "IMG_0003.JPG"),
        # Both: filename* is the real name, filename its ASCII fallback (RFC 6266 §4.3).
        (
            'form-data; name="fileToUpload"; filename="EUR rates.jpg"; filename*=UTF-8\'\'%E2%82%AC%20rates.jpg',
            "€ rates.jpg",
        ),
        ("form-data; filename*=utf-8'en'%C3%A9t%C3%A9.jpg; name=fileToUpload", "été.jpg"),
        ("form-data; name=\"fileToUpload\"; filename*=iso-8859-1''caf%E9.jpg", "café.jpg"),
        ('form-data; name="fileToUpload"; filename="C:\\Users\\Acer\\IMG_0003.JPG"', "IMG_0003.JPG"),
        ('form-data; name="fileToUpload"; filename="a; filename*=x.jpg"', "a; filename*=x.jpg"),
    ],
    ids=[
        "no filename",
        "filename",
        "both",
        "lowercase charset, language, name last",
        "latin-1",
        "windows path",
        "quoted",
    ],
)
async def test_the_photo_is_found_by_its_field_name_whatever_names_its_file(
    disposition: str, filename: str | None
) -> None:
    form = await read(body(*DSLR, part(disposition, PHOTO, "image/jpeg")))
    assert form.file == PHOTO
    assert form.filename == filename
    assert form.fields["password"] == "123456"
    assert "fileToUpload" not in form.fields


@pytest.mark.parametrize("chunk", [1, 7, 100, 4096])
async def test_bytes_are_exact_however_the_body_is_chunked(chunk: int) -> None:
    photo = part("form-data; name=\"fileToUpload\"; filename*=UTF-8''%E2%82%AC.jpg", PHOTO, "image/jpeg")
    form = await read(body(text("password", "pw"), photo), chunk=chunk)
    assert (form.file, form.filename, form.fields) == (PHOTO, "€.jpg", {"password": "pw"})


async def test_first_photo_part_wins_other_files_are_skipped_first_text_value_wins() -> None:
    form = await read(
        body(
            part('form-data; name="thumb"; filename="t.jpg"', b"THUMB", "image/jpeg"),
            part('form-data; name="fileToUpload"', PHOTO, "image/jpeg"),
            part('form-data; name="fileToUpload"; filename="second.jpg"', b"SECOND", "image/png"),
            part('form-data; name="fileToUpload"', b"THIRD"),
            text("name", "DESKTOP-K968T3F"),
            text("name", "later"),
        )
    )
    assert (form.file, form.filename, form.declared_type) == (PHOTO, None, "image/jpeg")
    assert form.fields == {"name": "DESKTOP-K968T3F"}


async def test_no_photo_part_and_an_empty_one() -> None:
    assert (await read(body(*DSLR))).file is None
    form = await read(body(part('form-data; name="fileToUpload"; filename="a.jpg"', b"", "image/jpeg")))
    assert form.file == b""


async def test_text_fields_keep_their_decoding() -> None:
    form = await read(body(text("status", "C:\\Users\\Acer\\preview.jpg"), part('form-data; name="x"', b"\xe9t\xe9")))
    assert form.fields == {"status": "C:\\Users\\Acer\\preview.jpg", "x": "\xe9t\xe9"}  # not UTF-8: Latin-1


async def test_too_large_before_reading_and_while_streaming() -> None:
    big = body(part('form-data; name="fileToUpload"', b"\x00" * (LIMIT + 300 * 1024)))
    for length in (True, False):
        with pytest.raises(AppError) as caught:
            await read(big, length=length)
        assert (caught.value.status, caught.value.code) == (413, "file_too_large")


def many(count: int, make: Any) -> Iterable[bytes]:
    return (make(i) for i in range(count))


@pytest.mark.parametrize(
    ("content", "ctype"),
    [
        (body(*DSLR), "multipart/form-data"),  # no boundary
        (body(part("form-data", b"nameless")), None),
        (body(*many(201, lambda i: text(f"f{i}", "v"))), None),
        (body(*many(5, lambda i: part(f'form-data; name="f{i}"; filename="{i}.jpg"', b"x"))), None),
        (body(*many(5, lambda i: part('form-data; name="fileToUpload"', b"x"))), None),
        (body(text("big", "x" * (1024 * 1024 + 1))), None),
        (b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition form-data\r\n\r\n", None),
    ],
    ids=["no boundary", "part without name", "201 fields", "5 files", "5 photo parts", "text over 1 MB", "bad header"],
)
async def test_malformed_bodies_are_invalid_form(content: bytes, ctype: str | None) -> None:
    with pytest.raises(AppError) as caught:
        await read(content, ctype=ctype or f"multipart/form-data; boundary={BOUNDARY}")
    assert (caught.value.status, caught.value.code) == (400, "invalid_form")


async def test_limits_are_inclusive() -> None:
    form = await read(
        body(
            *many(200, lambda i: text(f"f{i}", "v")),
            *many(4, lambda i: part(f'form-data; name="x{i}"; filename="a"', b"x")),
        )
    )
    assert len(form.fields) == 200


async def test_not_a_form_and_urlencoded() -> None:
    with pytest.raises(AppError) as caught:
        await read(b'{"a": 1}', ctype="application/json")
    assert (caught.value.status, caught.value.code) == (400, "invalid_form")
    form = await read(b"password=pw&time=1&time=2&x=%E2%82%AC", ctype="application/x-www-form-urlencoded")
    assert (form.file, form.fields) == (None, {"password": "pw", "time": "1", "x": "€"})


async def test_client_disconnect_mid_upload() -> None:
    with pytest.raises(AppError) as caught:
        await read(body(part('form-data; name="fileToUpload"', PHOTO)), chunk=512, disconnect=True)
    assert (caught.value.status, caught.value.code) == (400, "client_disconnected")


@pytest.mark.parametrize(
    ("disposition", "ctype"),
    [
        ("form-data; name=\"fileToUpload\"; filename*=idna''%FF%FE.jpg", None),  # idna raises UnicodeError
        ("form-data; name=\"fileToUpload\"; filename*=zlib''x.jpg", None),  # a codec that is not a text encoding
        ('form-data; name="fileToUpload"; filename="p.jpg"', f"multipart/form-data; boundary={BOUNDARY}; charset=idna"),
    ],
    ids=["filename-star-idna", "filename-star-binary-codec", "form-charset-idna"],
)
async def test_a_charset_that_cannot_decode_never_fails_the_request(disposition: str, ctype: str | None) -> None:
    """`filename*=idna''…` answered 500 (found by a hostile review): a name's charset must never cost the photo."""
    content = body(part(disposition, PHOTO, "image/jpeg"), text("password", "\xff\xfe-pw"))
    form = await (read(content, ctype=ctype) if ctype else read(content))
    assert form.file == PHOTO
    assert form.fields["password"]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "streamed"])
async def test_a_urlencoded_form_is_bounded_like_a_form_s_text_fields(declared: bool) -> None:
    """A 20 MB urlencoded post of millions of fields (no password needed) blocked the server's event loop for 7 s
    while it was parsed; such a form carries no file, so it gets the room a multipart form's text fields get."""
    urlencoded = "application/x-www-form-urlencoded"
    huge = b"password=x&" + b"&".join(b"%d" % i for i in range(60_000))
    with pytest.raises(AppError) as caught:
        await read(huge, ctype=urlencoded, length=declared, chunk=4096)
    assert (caught.value.status, caught.value.code) == (413, "form_too_large")
    many_fields = b"&".join(b"f%d=1" % i for i in range(201))
    with pytest.raises(AppError) as caught:
        await read(many_fields, ctype=urlencoded)
    assert (caught.value.status, caught.value.code) == (400, "invalid_form")
    form = await read(b"&".join(b"f%d=1" % i for i in range(200)), ctype=urlencoded)
    assert len(form.fields) == 200


# ---- with a sink: the photo streams out as it arrives ------------------------------------------------------


class Sink:
    """Records what the reader hands over: the fields at the photo's start, then every piece (copied: the reader
    may reuse its buffer)."""

    def __init__(self, refuse_after: int | None = None) -> None:
        self.begun: list[dict[str, str]] = []
        self.pieces: list[bytes] = []
        self.refuse_after = refuse_after

    async def begin(self, fields: Any) -> None:
        self.begun.append(dict(fields))

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self.pieces.append(bytes(data))
        if self.refuse_after is not None and sum(map(len, self.pieces)) > self.refuse_after:
            raise AppError(415, "unsupported_media_type", "no")


@pytest.mark.parametrize("chunk", [1, 7, 100, 4096, 65536])
async def test_a_sink_gets_the_photo_s_bytes_exactly_in_pieces_of_about_a_chunk(chunk: int) -> None:
    sink = Sink()
    content = body(text("password", "pw"), part('form-data; name="fileToUpload"; filename="a.jpg"', PHOTO), *DSLR[1:])
    form = await read_booth_form(request(content, chunk=chunk), LIMIT, sink=sink)
    assert b"".join(sink.pieces) == PHOTO
    # A chunk's bytes, and those the parser held back while it could not tell them from a boundary.
    assert max(map(len, sink.pieces)) <= chunk + len(BOUNDARY) + 8
    assert sink.begun == [{"password": "pw"}]  # the fields before the photo, when it begins
    assert (form.file, form.streamed_size, form.photo_size, form.filename) == (None, len(PHOTO), len(PHOTO), "a.jpg")
    assert form.fields == {"password": "pw", "time": "1758217512", "version": "3.30.2"}
    assert form.body_wait_sec >= 0.0


async def test_without_a_photo_part_a_sink_gets_nothing_and_an_empty_photo_only_its_start() -> None:
    sink = Sink()
    form = await read_booth_form(request(body(*DSLR)), LIMIT, sink=sink)
    assert (sink.begun, sink.pieces, form.photo_size) == ([], [], None)
    sink = Sink()
    form = await read_booth_form(request(body(part('form-data; name="fileToUpload"', b""))), LIMIT, sink=sink)
    assert (sink.begun, sink.pieces, form.photo_size) == ([{}], [], 0)


async def test_a_sink_s_refusal_ends_the_reading_at_once() -> None:
    sink = Sink(refuse_after=1000)
    taken = 0
    content = body(part('form-data; name="fileToUpload"', PHOTO), *DSLR)
    req = request(content, chunk=512)
    receive = req.receive

    async def counting() -> Any:
        nonlocal taken
        taken += 1
        return await receive()

    with pytest.raises(AppError) as caught:
        await read_booth_form(Request(req.scope, counting), LIMIT, sink=sink)
    assert caught.value.code == "unsupported_media_type"
    assert taken < len(content) // 512  # the rest of the body was never asked for
