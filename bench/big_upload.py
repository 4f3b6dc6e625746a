"""The booth side of `bench.big_waiters`: camera-sized photos made in code, distinct copies without copying, and a
DSLR-shaped multipart POST whose body is streamed (so 200 booths at once need one copy of the photo, not 200)."""

from __future__ import annotations

import hashlib
import io
import struct
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from PIL import Image, ImageFilter

from bench.load import DSLR_FIELDS, DSLR_FILENAME

WIDTH, HEIGHT = 6000, 4000
CHUNK = 256 * 1024


def camera_photo(quality: int) -> bytes:
    """A 6000 x 4000 JPEG compressing like a camera's (gradients + fine grain, as bench/image_ops.py makes it)."""
    base = Image.linear_gradient("L").resize((WIDTH, HEIGHT)).convert("RGB")
    grain = Image.effect_noise((WIDTH // 6, HEIGHT // 6), 40).resize((WIDTH, HEIGHT)).filter(ImageFilter.SHARPEN)
    img = Image.merge("RGB", (base.getchannel(0), grain, base.getchannel(2)))
    buf = io.BytesIO()
    # No EXIF block: the product strips metadata (EXIF, comments) and keeps the compressed data byte for byte, so
    # the answer of a passthrough provider is then this very file, whatever comment a `Variant` added.
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@dataclass(frozen=True)
class Variant:
    """The photo with a JPEG comment (COM segment) of its own right after SOI: `head` + `rest` are the file."""

    head: bytes
    rest: memoryview

    @classmethod
    def of(cls, photo: bytes, tag: str) -> Variant:
        payload = tag.encode()
        return cls(photo[:2] + b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload, memoryview(photo)[2:])


@dataclass(frozen=True)
class Answer:
    status: int  # -1: no HTTP answer
    sha256: str  # of the body
    code: str  # the error code of an error body (status -1: the httpx error's name), else ""
    received: float  # time.monotonic() when the whole body was read
    processing_ms: int  # X-Processing-Ms, -1 when absent
    retry_after: float | None = None  # the answer's Retry-After, seconds

    @property
    def refused(self) -> bool:
        """The product's overload answer (503 with Retry-After: database, backlog, busy), or no answer at all (the
        connection failed, `code` names the error): a booth tries again."""
        return (self.status == 503 and self.retry_after is not None) or self.status == -1


class Booth:
    """Posts as DSLR Remote Pro does: its text fields, `password`, `fileToUpload`, streamed from a `Variant`."""

    def __init__(self, client: httpx.AsyncClient, password: str) -> None:
        self.client = client
        self.boundary = f"bbbench{uuid.uuid4().hex}"
        fields = {**DSLR_FIELDS, "password": password}
        parts = [
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()
        ]
        parts.append(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="fileToUpload"; filename="{DSLR_FILENAME}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        )
        self.head = "".join(parts).encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()

    async def _body(self, v: Variant) -> AsyncIterator[bytes]:
        yield self.head + v.head
        for i in range(0, len(v.rest), CHUNK):
            yield bytes(v.rest[i : i + CHUNK])
        yield self.tail

    async def post(self, path: str, v: Variant) -> Answer:
        length = len(self.head) + len(v.head) + len(v.rest) + len(self.tail)
        headers = {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(length),
            "Expect": "100-continue",
        }
        h, start = hashlib.sha256(), b""
        try:
            async with self.client.stream("POST", path, content=self._body(v), headers=headers) as r:
                async for chunk in r.aiter_bytes():
                    h.update(chunk)
                    if len(start) < 2048:
                        start += chunk[:2048]
        except httpx.HTTPError as exc:
            # E.g. the server answered before reading the body (a refusal) and closed while we were still sending.
            return Answer(-1, "", type(exc).__name__, time.monotonic(), -1, retry_after=1.0)
        code = ""
        if r.status_code != 200 and start.startswith(b"{"):
            code = start.split(b'"code":"', 1)[-1].split(b'"', 1)[0].decode(errors="replace")
        retry = r.headers.get("retry-after", "")
        ms = int(r.headers.get("x-processing-ms", -1))
        return Answer(
            r.status_code, h.hexdigest(), code, time.monotonic(), ms, float(retry) if retry.isdigit() else None
        )
